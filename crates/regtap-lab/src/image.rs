//! Test images made offline: a docker-archive tarball (the `docker save`
//! format) with deterministic layers, for `docker load` and skopeo.

use std::path::Path;

use serde_json::json;

use crate::LabError;

/// One layer: an uncompressed tar of a few files.
#[derive(Debug, Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    /// `sha256:<hex>` of [`Layer::tar`]: the image config's diff_id.
    pub diff_id: String,
}

#[derive(Debug, Clone)]
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    /// `sha256:<hex>` of the config: the image id docker shows.
    pub config_digest: String,
}

/// Bytes from a xorshift generator: incompressible, yet the same every run.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn layer(files: &[(&str, Vec<u8>)]) -> Result<Layer, LabError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_slice())
            .map_err(|e| LabError::Setup(format!("layer tar: {e}")))?;
    }
    let tar = builder
        .into_inner()
        .map_err(|e| LabError::Setup(format!("layer tar: {e}")))?;
    let diff_id = sha256_digest(&tar);
    Ok(Layer { tar, diff_id })
}

impl TestImage {
    /// An image of `layer_sizes.len()` layers; layer `i` holds a file of
    /// `layer_sizes[i]` pseudo-random bytes (plus a small text file), all
    /// derived from `seed`, so different seeds give images that share nothing.
    pub fn new(seed: u64, layer_sizes: &[usize]) -> Result<Self, LabError> {
        let mut layers = Vec::new();
        for (i, &size) in layer_sizes.iter().enumerate() {
            let n = i as u64;
            layers.push(layer(&[
                (
                    &format!("lab/layer{i}.txt"),
                    format!("regtap lab image {seed}, layer {i}\n").into_bytes(),
                ),
                (
                    &format!("lab/data{i}.bin"),
                    pseudo_random(seed.wrapping_mul(7919).wrapping_add(n), size),
                ),
            ])?);
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/lab/layer0.txt"], "Labels": {"regtap.lab.seed": seed.to_string()}},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().enumerate().map(|(i, _)| json!({
                "created": "2024-01-01T00:00:00Z",
                "created_by": format!("regtap lab layer {i}"),
            })).collect::<Vec<_>>(),
        });
        let config = serde_json::to_vec(&config)
            .map_err(|e| LabError::Setup(format!("image config: {e}")))?;
        let config_digest = sha256_digest(&config);
        Ok(TestImage {
            layers,
            config,
            config_digest,
        })
    }

    /// Writes a docker-archive with `repo_tags` (e.g. `registry.test:5000/lab/app:latest`).
    pub fn write_docker_archive(&self, path: &Path, repo_tags: &[&str]) -> Result<(), LabError> {
        let hex_of = |digest: &str| digest.trim_start_matches("sha256:").to_owned();
        let config_name = format!("{}.json", hex_of(&self.config_digest));
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("{}/layer.tar", hex_of(&l.diff_id)))
            .collect();
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_names,
        }]);
        let manifest =
            serde_json::to_vec(&manifest).map_err(|e| LabError::Setup(format!("archive: {e}")))?;
        let mut files: Vec<(String, &[u8])> = vec![
            ("manifest.json".to_owned(), &manifest),
            (config_name, &self.config),
        ];
        for (name, layer) in layer_names.into_iter().zip(&self.layers) {
            files.push((name, &layer.tar));
        }
        let file = std::fs::File::create(path).map_err(|e| LabError::io(path, e))?;
        let mut builder = tar::Builder::new(file);
        for (name, content) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder
                .append_data(&mut header, &name, content)
                .map_err(|e| LabError::io(path, e))?;
        }
        builder
            .into_inner()
            .and_then(|mut f| std::io::Write::flush(&mut f))
            .map_err(|e| LabError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_seeds_differ() {
        let a = TestImage::new(1, &[1000, 10])
            .map_err(|e| e.to_string())
            .unwrap();
        let b = TestImage::new(1, &[1000, 10])
            .map_err(|e| e.to_string())
            .unwrap();
        let c = TestImage::new(2, &[1000, 10])
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(a.config_digest, b.config_digest);
        assert_ne!(a.layers[0].diff_id, c.layers[0].diff_id);
        assert_eq!(a.layers[0].diff_id, sha256_digest(&a.layers[0].tar));
    }

    #[test]
    fn the_archive_lists_config_and_layers() {
        let image = TestImage::new(3, &[100, 200])
            .map_err(|e| e.to_string())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        image
            .write_docker_archive(&path, &["registry.test:1/lab/x:latest"])
            .map_err(|e| e.to_string())
            .unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names[0], "manifest.json");
        assert!(names[2].ends_with("/layer.tar"));
    }
}
