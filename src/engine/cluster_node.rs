//! The connection to one cluster node under redis-rs' cluster connection: its
//! multiplexed connection, except that a redirection inside a pipeline's
//! replies is handed up as a plain value.
//!
//! redis-rs' cluster layer answers a whole pipeline with an error as soon as
//! one of its replies is a redirection (MOVED, ASK, TRYAGAIN, CLUSTERDOWN),
//! and the other replies are lost, though those commands ran. `cluster.rs`
//! sends a tick's commands as one pipeline per node and follows each
//! redirected command alone; for that it needs every reply. Hidden here,
//! shown again by [`reveal`] where each pipeline comes back.
//!
//! ```
//! use atlas_redis::engine::cluster_node::reveal;
//! use redis::Value;
//! assert_eq!(reveal(vec![Value::Okay]), vec![Value::Okay]);
//! ```

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::Connect;
use redis::{
  AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, ServerError,
  ServerErrorKind, Value,
};

/// A node's connection, as redis-rs' cluster connection holds it.
#[derive(Clone)]
pub struct NodeConnection(MultiplexedConnection);

impl Connect for NodeConnection {
  fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
  where
    T: IntoConnectionInfo + Send + 'a,
  {
    MultiplexedConnection::connect_with_config(info, config)
      .map(|c| c.map(NodeConnection))
      .boxed()
  }
}

impl ConnectionLike for NodeConnection {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    self.0.req_packed_command(cmd)
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    async move {
      let mut replies = self.0.req_packed_commands(pipeline, offset, count).await?;
      for r in &mut replies {
        if matches!(r, Value::ServerError(e) if needs_action(e)) {
          let error = std::mem::replace(r, Value::Nil);
          *r = Value::Attribute {
            data: Box::new(error),
            attributes: Vec::new(),
          };
        }
      }
      Ok(replies)
    }
    .boxed()
  }

  fn get_db(&self) -> i64 {
    self.0.get_db()
  }
}

/// The error replies redis-rs' cluster layer acts on (a redirection, a retry
/// or a slot map refresh) instead of handing them back.
pub fn needs_action(e: &ServerError) -> bool {
  matches!(
    e.kind(),
    Some(
      ServerErrorKind::Moved
        | ServerErrorKind::Ask
        | ServerErrorKind::TryAgain
        | ServerErrorKind::MasterDown
        | ServerErrorKind::ClusterDown
        | ServerErrorKind::BusyLoading
        | ServerErrorKind::ReadOnly
    )
  )
}

/// A pipeline's replies with the redirections `NodeConnection` hid shown again.
pub fn reveal(mut replies: Vec<Value>) -> Vec<Value> {
  for r in &mut replies {
    if let Value::Attribute { data, attributes } = r {
      if attributes.is_empty() && matches!(**data, Value::ServerError(_)) {
        *r = std::mem::replace(&mut **data, Value::Nil);
      }
    }
  }
  replies
}
