//! The lab on its own, without regtap: dockerd reaches the registries through a
//! plain CONNECT tunnel and trusts the lab CA. When this passes and the
//! end-to-end tests fail, the fault is regtap's, not the lab's.

use regtap_lab::image::TestImage;
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab, Via, skip_without_prerequisites};

#[test]
fn dockerd_logs_in_pushes_and_pulls_through_a_plain_tunnel() {
    if skip_without_prerequisites("the lab self-test (dockerd through a plain tunnel)") {
        return;
    }
    let lab = Lab::start(Via::Tunnel).unwrap_or_else(|e| panic!("{e}"));
    let host = lab.registry_host();

    lab.docker(&["login", &host, "-u", LAB_USER, "-p", "wrong"])
        .assert_failure();
    lab.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
        .assert_success();

    let image = TestImage::new(11, &[40_000, 9_000]).unwrap_or_else(|e| panic!("{e}"));
    let archive = lab.dir().join("tunnel-image.tar");
    let reference = format!("{host}/lab/tunnel:v1");
    image
        .write_docker_archive(&archive, &[&reference])
        .unwrap_or_else(|e| panic!("{e}"));
    lab.docker(&["load", "-i", archive.to_str().unwrap_or_default()])
        .assert_success();
    lab.docker(&["push", &reference]).assert_success();
    lab.docker(&["rmi", &reference]).assert_success();
    lab.docker(&["pull", &reference]).assert_success();

    let issued = lab.token_server.issued();
    assert!(
        issued.iter().any(|t| t.subject == LAB_USER
            && t.access
                .iter()
                .any(|a| a.name == "lab/tunnel" && a.actions.contains(&"push".to_owned()))),
        "no push token for lab/tunnel among {issued:?}"
    );

    let basic = lab.basic_registry_host();
    let basic_reference = format!("{basic}/lab/tunnel:v1");
    lab.docker(&["login", &basic, "-u", LAB_USER, "-p", LAB_PASSWORD])
        .assert_success();
    lab.docker(&["tag", &reference, &basic_reference])
        .assert_success();
    lab.docker(&["push", &basic_reference]).assert_success();

    let oci = lab.dir().join("tunnel-oci");
    lab.skopeo(&[
        "copy",
        "--src-creds",
        &format!("{LAB_USER}:{LAB_PASSWORD}"),
        &format!("docker://{reference}"),
        &format!("oci:{}:v1", oci.display()),
    ])
    .assert_success();
    assert!(oci.join("index.json").exists());
}
