//! Partition affinity (Kafka mode): a user's feed lives in one partition of
//! `deliveries` (murmur2 of the user id), that partition's inbox projection
//! runs inside exactly one gateway, and only that gateway serves the user.
//! Any other gateway answers the user's HTTP requests and WebSocket upgrades
//! with `307 Temporary Redirect` to the owner (same path and query).
//!
//! Ownership is static: gateway `i` of `n` owns the partitions `p` with
//! `p % n == i`. In embedded mode there is one gateway and it owns all.

use std::sync::Arc;

use missive_core::UserId;
use missive_infra::log::kafka_partition;

use crate::protocol::ApiError;

#[derive(Clone, Debug)]
pub struct Routing {
    index: usize,
    /// Base URLs (`http://host:port`) of every gateway, by index; empty in embedded mode.
    gateways: Arc<Vec<String>>,
    partitions: u32,
}

impl Routing {
    /// One gateway serving everyone.
    pub fn single(partitions: u32) -> Routing {
        Routing { index: 0, gateways: Arc::new(Vec::new()), partitions }
    }

    pub fn new(index: usize, gateways: Vec<String>, partitions: u32) -> Result<Routing, String> {
        if index >= gateways.len().max(1) {
            return Err(format!("gateway index {index} is outside the list of {} gateways", gateways.len()));
        }
        let gateways = gateways.into_iter().map(|url| url.trim_end_matches('/').to_string()).collect();
        Ok(Routing { index, gateways: Arc::new(gateways), partitions })
    }

    /// This gateway's own base URL (`None` for a lone gateway).
    pub fn own_url(&self) -> Option<&str> {
        self.gateways.get(self.index).map(String::as_str)
    }

    fn count(&self) -> usize {
        self.gateways.len().max(1)
    }

    /// The `deliveries` partition holding a user's feed.
    pub fn partition_of(&self, user: UserId) -> u32 {
        kafka_partition(user.0.to_string().as_bytes(), self.partitions)
    }

    pub fn owns_partition(&self, partition: u32) -> bool {
        partition as usize % self.count() == self.index
    }

    /// The base URL of the gateway serving `user`, when it is not this one.
    pub fn elsewhere(&self, user: UserId) -> Option<&str> {
        let owner = self.partition_of(user) as usize % self.count();
        if owner == self.index { None } else { self.gateways.get(owner).map(String::as_str) }
    }

    /// `Err(307 to the owner)` when `user` is served by another gateway.
    /// `path_and_query` is the request's own, so the client repeats it there.
    pub fn check(&self, user: UserId, path_and_query: &str) -> Result<(), ApiError> {
        match self.elsewhere(user) {
            None => Ok(()),
            Some(base) => Err(ApiError::redirect(format!("{base}{path_and_query}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_has_exactly_one_owner() {
        let gateways = vec!["http://a".to_string(), "http://b".to_string(), "http://c".to_string()];
        let routings: Vec<Routing> =
            (0..3).map(|index| Routing::new(index, gateways.clone(), 8).expect("routing")).collect();
        for user in 0..500u64 {
            let owners = routings.iter().filter(|routing| routing.elsewhere(UserId(user)).is_none()).count();
            assert_eq!(owners, 1, "user {user}");
            let partition = routings[0].partition_of(UserId(user));
            assert_eq!(routings.iter().filter(|routing| routing.owns_partition(partition)).count(), 1);
        }
        let single = Routing::single(8);
        assert!((0..100).all(|user| single.elsewhere(UserId(user)).is_none()));
    }

    #[test]
    fn redirects_keep_path_and_query() {
        let routing = Routing::new(0, vec!["http://a".into(), "http://b/".into()], 8).expect("routing");
        let user = (0..100).map(UserId).find(|user| routing.elsewhere(*user).is_some()).expect("a foreign user");
        let error = routing.check(user, "/v1/conversations?limit=5").expect_err("redirect");
        assert_eq!(error.status.as_u16(), 307);
        assert_eq!(error.location.as_deref(), Some("http://b/v1/conversations?limit=5"));
    }
}
