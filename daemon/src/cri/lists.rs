//! The two CRI listings, decoded into lean messages that hold only what the cache uses.
//! On a big node the full answers are megabytes of protobuf (10k pods: 5.8 MiB, 10k
//! containers: 7 MiB), mostly labels and annotations; decoding them whole into maps built
//! tens of MiB of short-lived strings on every resync. Fields left out here are skipped by
//! the decoder without being built. Field numbers are CRI v1's (`runtime/v1/api.proto`).
use k8s_cri::v1::{ContainerMetadata, ListContainersRequest, ListPodSandboxRequest};
use tonic::{
    Status,
    client::Grpc,
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodList {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<Pod>,
}

/// `PodSandbox` without state, timestamps, labels or annotations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Pod {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerList {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

/// `Container` without its timestamp and annotations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<Image>,
    #[prost(string, tag = "5")]
    pub image_ref: String,
    /// `ContainerState`.
    #[prost(int32, tag = "6")]
    pub state: i32,
    #[prost(btree_map = "string, string", tag = "8")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `ImageSpec` without its annotations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(string, tag = "1")]
    pub image: String,
}

/// ListPodSandbox and ListContainers on the sync task's channel.
pub struct Lists {
    grpc: Grpc<Channel>,
}

impl Lists {
    pub fn new(ch: Channel, max_message: usize) -> Self {
        Lists { grpc: Grpc::new(ch).max_decoding_message_size(max_message) }
    }

    pub async fn pods(&mut self) -> Result<tonic::Response<PodList>, Status> {
        self.unary("/runtime.v1.RuntimeService/ListPodSandbox", ListPodSandboxRequest::default()).await
    }

    pub async fn containers(&mut self) -> Result<tonic::Response<ContainerList>, Status> {
        self.unary("/runtime.v1.RuntimeService/ListContainers", ListContainersRequest::default()).await
    }

    async fn unary<Req, Resp>(&mut self, path: &'static str, req: Req) -> Result<tonic::Response<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("CRI channel not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        self.grpc
            .unary(tonic::Request::new(req), PathAndQuery::from_static(path), codec)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prost::Message;

    use super::*;

    /// A full CRI answer decodes into the lean one with every field the cache reads intact.
    #[test]
    fn lean_messages_read_full_cri_answers() {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        let full = k8s_cri::v1::ListContainersResponse {
            containers: vec![k8s_cri::v1::Container {
                id: "c1".into(),
                pod_sandbox_id: "p1".into(),
                metadata: Some(ContainerMetadata { name: "app".into(), attempt: 3 }),
                image: Some(k8s_cri::v1::ImageSpec {
                    image: "busybox:1".into(),
                    annotations: map(&[("a", "b")]),
                    ..Default::default()
                }),
                image_ref: "sha256:abc".into(),
                state: k8s_cri::v1::ContainerState::ContainerRunning as i32,
                created_at: 42,
                labels: map(&[("io.kubernetes.pod.name", "web"), ("team", "x")]),
                annotations: map(&[("io.kubernetes.container.hash", "1234")]),
                ..Default::default()
            }],
        };
        let lean = ContainerList::decode(full.encode_to_vec().as_slice()).unwrap();
        let c = &lean.containers[0];
        assert_eq!((c.id.as_str(), c.pod_sandbox_id.as_str(), c.image_ref.as_str()), ("c1", "p1", "sha256:abc"));
        assert_eq!(c.metadata, Some(ContainerMetadata { name: "app".into(), attempt: 3 }));
        assert_eq!(c.image.as_ref().map(|i| i.image.as_str()), Some("busybox:1"));
        assert_eq!(c.state, k8s_cri::v1::ContainerState::ContainerRunning as i32);
        assert_eq!(c.labels.get("team").map(String::as_str), Some("x"));

        let full = k8s_cri::v1::ListPodSandboxResponse {
            items: vec![k8s_cri::v1::PodSandbox {
                id: "p1".into(),
                metadata: Some(k8s_cri::v1::PodSandboxMetadata {
                    name: "web".into(),
                    uid: "u-1".into(),
                    namespace: "prod".into(),
                    attempt: 1,
                }),
                labels: map(&[("app", "web")]),
                annotations: map(&[("k", "v")]),
                ..Default::default()
            }],
        };
        let lean = PodList::decode(full.encode_to_vec().as_slice()).unwrap();
        let m = lean.items[0].metadata.as_ref().unwrap();
        assert_eq!((lean.items[0].id.as_str(), m.name.as_str(), m.uid.as_str(), m.namespace.as_str()), ("p1", "web", "u-1", "prod"));
    }
}
