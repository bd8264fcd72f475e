use std::collections::BTreeMap;

use super::*;

fn sandbox_spec(uid: &str) -> SandboxSpec {
    SandboxSpec {
        pod_uid: uid.into(),
        pod_namespace: "default".into(),
        pod_name: "p".into(),
        hostname: "p".into(),
        labels: BTreeMap::from([(labels::POD_UID.to_string(), uid.to_string())]),
        ..SandboxSpec::default()
    }
}

fn container_spec(uid: &str, name: &str, image: &str) -> ContainerSpec {
    ContainerSpec {
        pod_uid: uid.into(),
        name: name.into(),
        attempt: 0,
        image: image.into(),
        command: vec![],
        args: vec![],
        env: vec![],
        working_dir: None,
        labels: BTreeMap::from([
            (labels::POD_UID.to_string(), uid.to_string()),
            (labels::CONTAINER_NAME.to_string(), name.to_string()),
        ]),
        ..ContainerSpec::default()
    }
}

#[tokio::test]
async fn containers_run_until_stopped_or_made_to_exit_and_exits_are_announced() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let mut events = rt.events().unwrap();
    let sandbox = rt.create_sandbox(&sandbox_spec("u1")).await.unwrap();
    assert_eq!(sandbox.ip.as_deref(), Some("10.9.9.2"));
    let a = rt.create_container(&sandbox.id, &container_spec("u1", "a", "img")).await.unwrap();
    let b = rt.create_container(&sandbox.id, &container_spec("u1", "b", "img")).await.unwrap();
    rt.start_container(&a).await.unwrap();
    rt.start_container(&b).await.unwrap();
    assert!(rt.start_container(&a).await.is_err(), "a container starts once");
    assert!(rt.inspect_container(&a).await.unwrap().is_running());
    let info = rt.inspect_container(&a).await.unwrap();
    assert_eq!(ContainerInfo::identity(&info.labels), Some(("u1".into(), "a".into(), 0)));

    assert!(rt.exit("u1", "a", 7));
    assert_eq!(events.recv().await.unwrap().pod_uid, "u1");
    assert!(matches!(rt.inspect_container(&a).await.unwrap().state, ContainerState::Exited { exit_code: 7, .. }));
    rt.stop_container(&b, Duration::from_secs(30)).await.unwrap();
    let stopped = rt.inspect_container(&b).await.unwrap().state;
    assert!(matches!(stopped, ContainerState::Exited { exit_code: STOPPED_EXIT_CODE, .. }));

    assert!(rt.remove_sandbox(&sandbox.id).await.is_err(), "a sandbox with containers stays");
    rt.remove_container(&a).await.unwrap();
    rt.remove_container(&b).await.unwrap();
    rt.remove_sandbox(&sandbox.id).await.unwrap();
    assert!(rt.list_containers(None).await.unwrap().is_empty());
    let again = rt.create_sandbox(&sandbox_spec("u2")).await.unwrap();
    assert_eq!(again.ip.as_deref(), Some("10.9.9.2"), "addresses are reused once free");
}

#[tokio::test]
async fn injected_behaviour_missing_images_exit_on_start_and_unsupported_calls() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let sandbox = rt.create_sandbox(&sandbox_spec("u1")).await.unwrap();
    rt.set_image_missing("gone", true);
    assert_eq!(rt.image_id("gone").await.unwrap(), None);
    assert!(rt.image_id("here").await.unwrap().is_some_and(|id| id.starts_with("sha256:")));
    let err = rt.create_container(&sandbox.id, &container_spec("u1", "a", "gone")).await.unwrap_err();
    assert_eq!(err, RuntimeError::ImageMissing("gone".into()));

    rt.set_exit_on_start("job", Some(0));
    let id = rt.create_container(&sandbox.id, &container_spec("u1", "j", "job")).await.unwrap();
    rt.start_container(&id).await.unwrap();
    assert!(matches!(rt.inspect_container(&id).await.unwrap().state, ContainerState::Exited { exit_code: 0, .. }));

    let logs = rt.logs(&id).await.unwrap_err();
    assert_eq!(logs.to_string(), "logs is not supported by the fake runtime");
}

#[tokio::test]
async fn exec_runs_only_in_running_containers_is_recorded_and_can_be_scripted() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let sandbox = rt.create_sandbox(&sandbox_spec("u1")).await.unwrap();
    let a = rt.create_container(&sandbox.id, &container_spec("u1", "a", "img")).await.unwrap();
    let cmd = vec!["cat".to_string(), "/tmp/healthy".to_string()];
    assert!(rt.exec(&a, &cmd).await.is_err(), "not running yet");
    rt.start_container(&a).await.unwrap();
    let (code, output) = rt.exec(&a, &cmd).await.unwrap();
    assert_eq!(code, 0, "exit 0 unless scripted");
    assert!(String::from_utf8(output).unwrap().contains("/tmp/healthy"));
    rt.set_exec_result("u1", "a", 3);
    assert_eq!(rt.exec(&a, &cmd).await.unwrap().0, 3);
    rt.set_exec_hang("u1", "a", true);
    let hung = tokio::time::timeout(Duration::from_millis(50), rt.exec(&a, &cmd)).await;
    assert!(hung.is_err(), "a hanging exec does not end");
    let calls = rt.execs();
    assert_eq!(calls.len(), 3, "the refused exec is not recorded");
    assert!(calls.iter().all(|c| c.pod_uid == "u1" && c.container == "a" && c.id == a && c.command == cmd));
    rt.set_exec_hang("u1", "a", false);
    rt.stop_container(&a, Duration::ZERO).await.unwrap();
    assert!(rt.exec(&a, &cmd).await.is_err(), "not after it stopped");
}
