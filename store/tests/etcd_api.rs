//! The etcd v3 API of a single-member store, driven over real sockets with the `etcd_client`
//! crate and, where installed, the real `etcdctl`.

#[path = "etcd_api/support.rs"]
mod support;

#[path = "etcd_api/etcdctl.rs"]
mod etcdctl;
#[path = "etcd_api/kv.rs"]
mod kv;
#[path = "etcd_api/lease_cluster.rs"]
mod lease_cluster;
#[path = "etcd_api/watch.rs"]
mod watch;
