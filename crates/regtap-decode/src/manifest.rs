//! Manifests: Docker schema 2 manifest and manifest list, OCI manifest and
//! index (read with `oci-spec`'s types), and schema 1 for its layer list.

use oci_spec::image::{ImageIndex, ImageManifest};
use serde_json::Value;

use std::collections::BTreeMap;

use crate::model::{
    BlobStatus, Descriptor, DescriptorRole, ManifestInfo, ManifestPurpose, ManifestSchema,
};

const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const BUILDKIT_CACHE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// Config media types of images; any other config makes an artifact.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Why a body is not a manifest document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("manifest is not a JSON object")]
    NotObject,
    /// `media_type`: the declared or sent one, when there was one.
    #[error(
        "neither a manifest nor an index (no config, layers or manifests; mediaType {})",
        media_type.as_deref().unwrap_or("absent")
    )]
    NeitherManifestNorIndex { media_type: Option<String> },
}

/// Decodes a manifest document. `content_type` is the header sent with it,
/// used when the document has no `mediaType`.
pub fn decode(body: &[u8], content_type: Option<&str>) -> Result<ManifestInfo, ManifestError> {
    let value: Value = serde_json::from_slice(body)?;
    let Some(obj) = value.as_object() else {
        return Err(ManifestError::NotObject);
    };
    let declared = obj.get("mediaType").and_then(Value::as_str);
    let header_type = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim())
        .filter(|c| !c.is_empty() && *c != "application/json");
    let media_type = declared.or(header_type).unwrap_or_default().to_owned();
    let mut problems = Vec::new();
    if let (Some(declared), Some(header)) = (declared, header_type)
        && declared != header
    {
        problems.push(format!(
            "mediaType {declared} differs from Content-Type {header}"
        ));
    }
    let schema_version = obj.get("schemaVersion").and_then(Value::as_u64);
    let mut info = ManifestInfo {
        schema: ManifestSchema::Unknown,
        media_type,
        digest: None,
        config: None,
        layers: Vec::new(),
        manifests: Vec::new(),
        problems,
        artifact_type: obj
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_owned),
        subject: obj.get("subject").and_then(loose),
        annotations: annotations(obj.get("annotations")),
        purpose: ManifestPurpose::Image,
    };
    if schema_version == Some(1) || obj.contains_key("fsLayers") {
        info.schema = ManifestSchema::DockerV1;
        info.layers = schema1_layers(obj.get("fsLayers"));
        return Ok(info);
    }
    if obj.contains_key("manifests") {
        info.schema = if info.media_type == DOCKER_LIST {
            ManifestSchema::DockerManifestList
        } else {
            ManifestSchema::OciIndex
        };
        unexpected_media_type(&mut info, &[DOCKER_LIST, OCI_INDEX]);
        match serde_json::from_value::<ImageIndex>(value.clone()) {
            Ok(index) => info.manifests = index.manifests().iter().map(typed).collect(),
            Err(e) => {
                info.problems.push(format!("not a valid image index: {e}"));
                info.manifests = loose_list(obj.get("manifests"));
            }
        }
        enrich(&mut info.manifests, obj.get("manifests"));
        info.purpose = purpose(&info);
        return Ok(info);
    }
    if obj.contains_key("layers") || obj.contains_key("config") {
        info.schema = if info.media_type == DOCKER_V2 {
            ManifestSchema::DockerV2
        } else {
            ManifestSchema::OciManifest
        };
        unexpected_media_type(&mut info, &[DOCKER_V2, OCI_MANIFEST]);
        match serde_json::from_value::<ImageManifest>(value.clone()) {
            Ok(manifest) => {
                info.config = Some(typed(manifest.config()));
                info.layers = manifest.layers().iter().map(typed).collect();
            }
            Err(e) => {
                info.problems
                    .push(format!("not a valid image manifest: {e}"));
                info.config = obj.get("config").and_then(loose);
                info.layers = loose_list(obj.get("layers"));
            }
        }
        enrich(&mut info.layers, obj.get("layers"));
        if let Some(config) = info.config.as_mut()
            && config.media_type == BUILDKIT_CACHE
        {
            config.role = Some(DescriptorRole::BuildCacheConfig);
        }
        info.purpose = purpose(&info);
        return Ok(info);
    }
    Err(ManifestError::NeitherManifestNorIndex {
        media_type: Some(info.media_type).filter(|t| !t.is_empty()),
    })
}

fn unexpected_media_type(info: &mut ManifestInfo, expected: &[&str]) {
    if !info.media_type.is_empty() && !expected.contains(&info.media_type.as_str()) {
        info.problems.push(format!(
            "media type {} does not fit the document's shape (expected {})",
            info.media_type,
            expected.join(" or ")
        ));
    }
}

/// `annotations` of a document or descriptor, string values only.
fn annotations(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds what the typed reading drops (annotations, `artifactType`) from the
/// raw entries, and labels attestation, in-toto and cache entries.
fn enrich(descriptors: &mut [Descriptor], raw: Option<&Value>) {
    let raw: &[Value] = raw.and_then(Value::as_array).map_or(&[], Vec::as_slice);
    for (n, d) in descriptors.iter_mut().enumerate() {
        if let Some(entry) = raw.get(n) {
            d.annotations = annotations(entry.get("annotations"));
            d.artifact_type = entry
                .get("artifactType")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        d.role = if d
            .annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
        {
            Some(DescriptorRole::AttestationManifest)
        } else if d.media_type == IN_TOTO {
            Some(DescriptorRole::InToto)
        } else if d.media_type == BUILDKIT_CACHE {
            Some(DescriptorRole::BuildCacheConfig)
        } else {
            None
        };
    }
}

fn purpose(info: &ManifestInfo) -> ManifestPurpose {
    let cache = |d: &Descriptor| d.role == Some(DescriptorRole::BuildCacheConfig);
    if info.config.as_ref().is_some_and(cache) || info.manifests.iter().any(cache) {
        return ManifestPurpose::BuildCache;
    }
    if !info.layers.is_empty()
        && info
            .layers
            .iter()
            .all(|l| l.role == Some(DescriptorRole::InToto))
    {
        return ManifestPurpose::Attestation;
    }
    if let Some(artifact_type) = &info.artifact_type {
        return ManifestPurpose::Artifact {
            artifact_type: artifact_type.clone(),
        };
    }
    match &info.config {
        Some(config) if !IMAGE_CONFIGS.contains(&config.media_type.as_str()) => {
            ManifestPurpose::Artifact {
                artifact_type: config.media_type.clone(),
            }
        }
        _ => ManifestPurpose::Image,
    }
}

/// Manifest lists and indexes point at other manifests, not at blobs.
pub fn is_index(schema: ManifestSchema) -> bool {
    matches!(
        schema,
        ManifestSchema::DockerManifestList | ManifestSchema::OciIndex
    )
}

/// Names of the known manifest media types, for summaries.
pub fn schema_name(schema: ManifestSchema) -> &'static str {
    match schema {
        ManifestSchema::DockerV2 => "Docker schema 2 manifest",
        ManifestSchema::DockerManifestList => "Docker manifest list",
        ManifestSchema::OciManifest => "OCI manifest",
        ManifestSchema::OciIndex => "OCI index",
        ManifestSchema::DockerV1 => "Docker schema 1 manifest",
        ManifestSchema::Unknown => "manifest",
    }
}

fn typed(d: &oci_spec::image::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: Some(d.size()),
        platform: d.platform().as_ref().map(|p| {
            let mut text = format!("{}/{}", p.os(), p.architecture());
            if let Some(variant) = p.variant() {
                text.push('/');
                text.push_str(variant);
            }
            text
        }),
        blob_status: BlobStatus::Unknown,
        blob_flow_ids: Vec::new(),
        artifact_type: None,
        annotations: BTreeMap::new(),
        role: None,
    }
}

fn loose(value: &Value) -> Option<Descriptor> {
    let digest = value.get("digest")?.as_str()?.to_owned();
    let platform = value.get("platform").map(|p| {
        let part = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?");
        format!("{}/{}", part("os"), part("architecture"))
    });
    Some(Descriptor {
        media_type: value
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        digest,
        size: value.get("size").and_then(Value::as_u64),
        platform,
        blob_status: BlobStatus::Unknown,
        blob_flow_ids: Vec::new(),
        artifact_type: None,
        annotations: BTreeMap::new(),
        role: None,
    })
}

fn loose_list(value: Option<&Value>) -> Vec<Descriptor> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(loose).collect())
        .unwrap_or_default()
}

/// Schema 1 lists layers top-first as `fsLayers[].blobSum`; they are
/// returned base-first like schema 2, duplicates (empty layers) kept.
fn schema1_layers(value: Option<&Value>) -> Vec<Descriptor> {
    let mut layers: Vec<Descriptor> = value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|l| l.get("blobSum")?.as_str())
                .map(|digest| Descriptor {
                    media_type: "application/vnd.docker.container.image.rootfs.diff+x-gtar"
                        .to_owned(),
                    digest: digest.to_owned(),
                    size: None,
                    platform: None,
                    blob_status: BlobStatus::Unknown,
                    blob_flow_ids: Vec::new(),
                    artifact_type: None,
                    annotations: BTreeMap::new(),
                    role: None,
                })
                .collect()
        })
        .unwrap_or_default();
    layers.reverse();
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SCHEMA2: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 766,
             "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 262435,
     "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"},
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 65787,
     "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
  ]
}"#;

    #[test]
    fn docker_schema2() {
        let m = decode(SCHEMA2.as_bytes(), Some(DOCKER_V2)).unwrap();
        assert_eq!(m.schema, ManifestSchema::DockerV2);
        assert_eq!(m.media_type, DOCKER_V2);
        let config = m.config.unwrap();
        assert_eq!(config.size, Some(766));
        assert!(config.digest.starts_with("sha256:4444"));
        assert_eq!(m.layers.len(), 2);
        assert_eq!(m.layers[1].size, Some(65787));
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }

    #[test]
    fn oci_index_with_platforms() {
        let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":500,
           "digest":"sha256:5555555555555555555555555555555555555555555555555555555555555555",
           "platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        let m = decode(body.as_bytes(), None).unwrap();
        assert_eq!(m.schema, ManifestSchema::OciIndex);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.manifests[0].platform.as_deref(), Some("linux/arm64/v8"));
        assert!(is_index(m.schema));
    }

    #[test]
    fn docker_list_by_content_type_and_oci_manifest_without_media_type() {
        let list = r#"{"schemaVersion":2,"manifests":[]}"#;
        let m = decode(
            list.as_bytes(),
            Some(&format!("{DOCKER_LIST}; charset=utf-8")),
        )
        .unwrap();
        assert_eq!(m.schema, ManifestSchema::DockerManifestList);
        let oci = SCHEMA2.replace(
            r#""mediaType": "application/vnd.docker.distribution.manifest.v2+json","#,
            "",
        );
        let m = decode(oci.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.schema, ManifestSchema::OciManifest);
        assert_eq!(m.media_type, OCI_MANIFEST);
        let odd = decode(list.as_bytes(), Some(DOCKER_V2)).unwrap();
        assert!(
            odd.problems[0].contains("does not fit"),
            "{:?}",
            odd.problems
        );
    }

    #[test]
    fn schema1_layers_base_first() {
        let body = r#"{"schemaVersion":1,"name":"lab/old","tag":"v1","fsLayers":[{"blobSum":"sha256:top"},{"blobSum":"sha256:base"}]}"#;
        let m = decode(body.as_bytes(), None).unwrap();
        assert_eq!(m.schema, ManifestSchema::DockerV1);
        let digests: Vec<_> = m.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(digests, vec!["sha256:base", "sha256:top"]);
    }

    #[test]
    fn invalid_but_readable_and_unreadable_manifests() {
        let bad_digest = r#"{"schemaVersion":2,"config":{"digest":"md5:xyz","size":1},"layers":[{"digest":"sha256:abc"}]}"#;
        let m = decode(bad_digest.as_bytes(), None).unwrap();
        assert_eq!(m.config.unwrap().digest, "md5:xyz");
        assert_eq!(m.layers.len(), 1);
        assert!(m.problems[0].contains("not a valid image manifest"));
        let err = |body: &str, content_type| decode(body.as_bytes(), content_type).unwrap_err();
        assert!(matches!(err("{", None), ManifestError::NotJson(_)));
        assert!(
            err("{", None)
                .to_string()
                .starts_with("manifest is not JSON: ")
        );
        assert_eq!(err("[]", None).to_string(), "manifest is not a JSON object");
        assert_eq!(
            err(r#"{"hello":1}"#, None).to_string(),
            "neither a manifest nor an index (no config, layers or manifests; mediaType absent)"
        );
        assert!(matches!(
            err(r#"{"hello":1}"#, Some("text/plain")),
            ManifestError::NeitherManifestNorIndex { media_type: Some(t) } if t == "text/plain"
        ));
    }

    #[test]
    fn truncated_manifests_never_panic() {
        for cut in 0..SCHEMA2.len() {
            let _ = decode(&SCHEMA2.as_bytes()[..cut], None);
        }
    }
}
