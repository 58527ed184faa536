//! The decoder's hash maps, keyed by a capture's strings and ids and
//! looked up several times per flow. std's SipHash took 8% of the time of
//! linking a 100k-flow capture; foldhash is several times faster, and
//! still seeded per process, so a crafted capture cannot choose its
//! collisions.

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
