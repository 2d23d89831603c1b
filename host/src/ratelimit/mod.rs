//! Rate limits: the `[rate_limits]` config and the limiters built from it. Tool calls
//! are limited per user, per tool (all users together) and per user x tool, with
//! per-plugin and per-tool overrides ([`ToolLimiter`]); HTTP requests to the
//! authorization server and requests that fail authentication are limited per client
//! address ([`AddressLimiter`]). Every limiter's memory is bounded ([`keyed`]). The
//! tool-call budgets live in this process, or in Redis for several replicas
//! ([`shared`]), and so do the per-address limits.

pub mod keyed;
pub mod rate;
pub mod shared;

use crate::domain::PluginName;
use keyed::KeyedLimiter;
pub use rate::Rate;
use serde::{Deserialize, Deserializer};
use shared::{LimitStore, OnStoreError, SharedBudgets, SharedRefusal, Spend};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Default for how many keys (users, addresses) one limiter remembers.
const DEFAULT_MAX_TRACKED_KEYS: usize = 100_000;

/// `[rate_limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// One user's calls, all tools together.
    #[serde(default)]
    pub per_user: Option<Rate>,
    /// One tool's calls, all users together.
    #[serde(default)]
    pub per_tool: Option<Rate>,
    /// One user's calls of one tool.
    #[serde(default)]
    pub per_user_tool: Option<Rate>,
    /// `[rate_limits.plugins.NAME]`: the per-tool budgets for every tool of a plugin.
    #[serde(default)]
    pub plugins: BTreeMap<PluginName, ToolRates>,
    /// `[rate_limits.tools.NAME]`: the per-tool budgets for one tool (over the plugin's).
    #[serde(default)]
    pub tools: BTreeMap<String, ToolRates>,
    /// `[rate_limits.per_address]`: limits on HTTP clients by address.
    #[serde(default)]
    pub per_address: PerAddress,
    /// How many keys (users, addresses) one limiter remembers at most; past it the
    /// keys closest to a full allowance are forgotten.
    #[serde(default = "default_max_tracked_keys")]
    pub max_tracked_keys: usize,
    /// Where every budget is kept: `"memory"` (this process, the default) or a
    /// `redis://` URL every replica shares.
    #[serde(default)]
    pub store: LimitStore,
    /// With a Redis store: what a call gets when Redis cannot answer.
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_user: None,
            per_tool: None,
            per_user_tool: None,
            plugins: BTreeMap::new(),
            tools: BTreeMap::new(),
            per_address: PerAddress::default(),
            max_tracked_keys: DEFAULT_MAX_TRACKED_KEYS,
            store: LimitStore::InProcess,
            on_store_error: OnStoreError::Deny,
        }
    }
}

fn default_max_tracked_keys() -> usize {
    DEFAULT_MAX_TRACKED_KEYS
}

/// The budgets that belong to a tool, set for a plugin's tools or for one tool.
/// (`per_user` spans every tool, so it has no override.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRates {
    /// The tool's calls, all users together.
    #[serde(default)]
    pub per_tool: Option<Rate>,
    /// One user's calls of the tool.
    #[serde(default)]
    pub per_user_tool: Option<Rate>,
}

/// `[rate_limits.per_address]`: on by default; `"off"` turns one off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerAddress {
    /// Requests to the embedded authorization server's endpoints (login, token,
    /// registration, metadata) from one address.
    #[serde(
        default = "default_authorization_server",
        deserialize_with = "off_or_rate"
    )]
    pub authorization_server: Option<Rate>,
    /// Requests to `/mcp` from one address that fail authentication.
    #[serde(
        default = "default_failed_authentication",
        deserialize_with = "off_or_rate"
    )]
    pub failed_authentication: Option<Rate>,
}

impl Default for PerAddress {
    fn default() -> Self {
        Self {
            authorization_server: default_authorization_server(),
            failed_authentication: default_failed_authentication(),
        }
    }
}

/// A few logins and token refreshes a minute are normal; hundreds are a password or
/// code guesser.
fn default_authorization_server() -> Option<Rate> {
    Some(Rate::parse("120/min").expect("a valid rate"))
}

/// A client retrying with an expired token fails a few times; a token guesser fails
/// many.
fn default_failed_authentication() -> Option<Rate> {
    Some(Rate::parse("60/min").expect("a valid rate"))
}

fn off_or_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Rate>, D::Error> {
    // A string is either "off" or a rate; a table is a rate.
    let value = toml::Value::deserialize(deserializer)?;
    match value {
        toml::Value::String(text) if text.trim() == "off" => Ok(None),
        toml::Value::String(text) => Rate::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        other => Rate::deserialize(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl RateLimitConfig {
    /// Checks what serde cannot: every override names a configured plugin.
    pub fn check(&self, plugins: &[&PluginName]) -> Result<(), String> {
        if self.max_tracked_keys < 100 {
            return Err(format!(
                "[rate_limits] max_tracked_keys = {}: at least 100",
                self.max_tracked_keys
            ));
        }
        for name in self.plugins.keys() {
            if !plugins.contains(&name) {
                return Err(format!(
                    "[rate_limits.plugins.{name}] names no configured plugin (there is no \
                     [plugins.{name}])"
                ));
            }
        }
        Ok(())
    }

    /// Checks the tool overrides against the tools the loaded plugins offer.
    pub fn check_tools(&self, mut offered: impl FnMut(&str) -> bool) -> Result<(), String> {
        for name in self.tools.keys() {
            if !offered(name) {
                return Err(format!(
                    "[rate_limits.tools.{name}] names no tool a loaded plugin offers"
                ));
            }
        }
        Ok(())
    }

    /// The budgets of `plugin`'s tool `tool`: the tool's override, else the plugin's,
    /// else the global one.
    fn rates_for(&self, plugin: &PluginName, tool: &str) -> ToolRates {
        let by_tool = self.tools.get(tool);
        let by_plugin = self.plugins.get(plugin);
        ToolRates {
            per_tool: by_tool
                .and_then(|t| t.per_tool)
                .or_else(|| by_plugin.and_then(|p| p.per_tool))
                .or(self.per_tool),
            per_user_tool: by_tool
                .and_then(|t| t.per_user_tool)
                .or_else(|| by_plugin.and_then(|p| p.per_user_tool))
                .or(self.per_user_tool),
        }
    }
}

/// Which budget refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The caller's calls, all tools together.
    User,
    /// The tool's calls, all callers together.
    Tool,
    /// The caller's calls of this tool.
    UserTool,
}

impl Budget {
    /// The budget as records name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::User => "per_user",
            Budget::Tool => "per_tool",
            Budget::UserTool => "per_user_tool",
        }
    }
}

/// A call over one of its budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Which budget.
    pub budget: Budget,
    /// Its rate.
    pub rate: Rate,
    /// When the budget next allows a call.
    pub retry_after: Duration,
}

impl RateLimited {
    /// The wait in whole seconds, rounded up (at least 1): what `Retry-After` and
    /// `retry_after_seconds` say.
    pub fn retry_after_seconds(&self) -> u64 {
        whole_seconds(self.retry_after)
    }
}

/// Why the limiter refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// One of its budgets is spent.
    Limited(RateLimited),
    /// The shared store cannot be read, and `on_store_error = "deny"`.
    StoreDown,
}

/// A wait in whole seconds, rounded up, at least 1.
pub fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// A limiter with the rate it enforces.
struct Limited<K: std::hash::Hash + Eq + Clone> {
    rate: Rate,
    limiter: KeyedLimiter<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Limited<K> {
    fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            limiter: KeyedLimiter::new(rate.quota(), max_keys),
        }
    }

    fn check(&self, key: &K, budget: Budget) -> Result<(), RateLimited> {
        self.limiter.check(key).map_err(|retry_after| RateLimited {
            budget,
            rate: self.rate,
            retry_after,
        })
    }
}

/// One tool's budgets.
struct ToolBudgets {
    per_tool: Option<Limited<()>>,
    per_user_tool: Option<Limited<String>>,
}

/// The tool-call limiter: step 3 of the pipeline.
pub struct ToolLimiter {
    config: RateLimitConfig,
    per_user: Option<Limited<String>>,
    /// Each tool's budgets, made on its first call.
    tools: RwLock<HashMap<(PluginName, String), Arc<ToolBudgets>>>,
    /// With `store = "redis://..."`: the budgets every replica shares (the in-process
    /// limiters above are then unused).
    shared: Option<Arc<SharedBudgets>>,
}

impl ToolLimiter {
    /// The limiter for `config`. A Redis store is connected on first use.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_user: config
                .per_user
                .map(|rate| Limited::new(rate, config.max_tracked_keys)),
            config: config.clone(),
            tools: RwLock::new(HashMap::new()),
            shared: shared_budgets(config),
        }
    }

    /// Spends one call of `subject`'s budgets for `plugin`'s `tool`, here or in the
    /// shared store, most specific first; or says why not.
    pub async fn check(
        &self,
        subject: &str,
        plugin: &PluginName,
        tool: &str,
    ) -> Result<(), Refusal> {
        let Some(shared) = &self.shared else {
            return self
                .check_here(subject, plugin, tool)
                .map_err(Refusal::Limited);
        };
        let rates = self.config.rates_for(plugin, tool);
        let whose = [plugin.as_str(), tool, subject];
        let budgets = [
            (Budget::UserTool, rates.per_user_tool, &whose[..]),
            (Budget::User, self.config.per_user, &whose[2..]),
            (Budget::Tool, rates.per_tool, &whose[..2]),
        ];
        let mut spent = Vec::with_capacity(3);
        let mut spends = Vec::with_capacity(3);
        for (budget, rate, key) in budgets {
            if let Some(rate) = rate {
                spent.push(budget);
                spends.push(Spend {
                    budget: budget.as_str(),
                    rate,
                    key,
                });
            }
        }
        if spends.is_empty() {
            return Ok(());
        }
        shared
            .check(&spends)
            .await
            .map_err(|refusal| match refusal {
                SharedRefusal::Spent { index, retry_after } => Refusal::Limited(RateLimited {
                    budget: spent[index],
                    rate: spends[index].rate,
                    retry_after,
                }),
                SharedRefusal::StoreDown => Refusal::StoreDown,
            })
    }

    /// Whether the shared store (if any) answers: for the readiness check.
    pub async fn ready(&self) -> Result<(), String> {
        match &self.shared {
            Some(shared) => shared.ping().await,
            None => Ok(()),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(&RateLimitConfig::default())
    }

    /// Spends one call of `subject`'s budgets for `plugin`'s `tool` in this process,
    /// most specific first, or says which budget is spent and when it allows a call
    /// again.
    pub fn check_here(
        &self,
        subject: &str,
        plugin: &PluginName,
        tool: &str,
    ) -> Result<(), RateLimited> {
        let budgets = self.budgets(plugin, tool);
        let subject = subject.to_owned();
        if let Some(limited) = &budgets.per_user_tool {
            limited.check(&subject, Budget::UserTool)?;
        }
        if let Some(limited) = &self.per_user {
            limited.check(&subject, Budget::User)?;
        }
        if let Some(limited) = &budgets.per_tool {
            limited.check(&(), Budget::Tool)?;
        }
        Ok(())
    }

    /// Forgets the keys whose allowance has refilled (called on a timer).
    pub fn prune(&self) {
        if let Some(limited) = &self.per_user {
            limited.limiter.prune();
        }
        let tools = self.tools.read().unwrap_or_else(|e| e.into_inner());
        for budgets in tools.values() {
            if let Some(limited) = &budgets.per_user_tool {
                limited.limiter.prune();
            }
        }
    }

    fn budgets(&self, plugin: &PluginName, tool: &str) -> Arc<ToolBudgets> {
        let key = (plugin.clone(), tool.to_owned());
        if let Some(found) = self
            .tools
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return found.clone();
        }
        let rates = self.config.rates_for(plugin, tool);
        let max_keys = self.config.max_tracked_keys;
        let mut tools = self.tools.write().unwrap_or_else(|e| e.into_inner());
        tools
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ToolBudgets {
                    per_tool: rates.per_tool.map(|rate| Limited::new(rate, 2)),
                    per_user_tool: rates.per_user_tool.map(|rate| Limited::new(rate, max_keys)),
                })
            })
            .clone()
    }
}

/// The shared budgets `config` asks for (`None`: in this process).
fn shared_budgets(config: &RateLimitConfig) -> Option<Arc<SharedBudgets>> {
    match &config.store {
        LimitStore::InProcess => None,
        LimitStore::Redis(store) => Some(Arc::new(SharedBudgets::new(
            store.clone(),
            config.on_store_error,
        ))),
    }
}

/// Why an address's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// Over its rate: a request is allowed again after this long.
    Over(Duration),
    /// The shared store cannot be read, and `on_store_error = "deny"`.
    StoreDown,
}

/// A per-address limiter for HTTP clients. IPv6 clients are counted by their /64, the
/// block one host is usually given, so one host cannot dodge it by changing address.
pub struct AddressLimiter {
    limited: Limited<IpAddr>,
    /// The budget's name, in the shared store's keys.
    name: &'static str,
    /// With a Redis store: the allowance every replica shares.
    shared: Option<Arc<SharedBudgets>>,
}

impl AddressLimiter {
    /// A limiter named `name` at `rate`, remembering at most `max_keys` addresses here,
    /// or kept in `shared`; `None` without a rate.
    pub fn new(
        name: &'static str,
        rate: Option<Rate>,
        max_keys: usize,
        shared: Option<Arc<SharedBudgets>>,
    ) -> Option<Self> {
        rate.map(|rate| Self {
            limited: Limited::new(rate, max_keys),
            name,
            shared,
        })
    }

    /// Spends one request of `address`'s allowance, or says why not.
    pub async fn check(&self, address: IpAddr) -> Result<(), AddressRefusal> {
        let address = address_key(address);
        let Some(shared) = &self.shared else {
            return self
                .limited
                .limiter
                .check(&address)
                .map_err(|wait| AddressRefusal::Over(wait.max(Duration::from_millis(1))));
        };
        let whose = address.to_string();
        let spend = Spend {
            budget: self.name,
            rate: self.limited.rate,
            key: &[whose.as_str()],
        };
        shared
            .check(&[spend])
            .await
            .map_err(|refusal| match refusal {
                SharedRefusal::Spent { retry_after, .. } => AddressRefusal::Over(retry_after),
                SharedRefusal::StoreDown => AddressRefusal::StoreDown,
            })
    }

    /// Forgets the addresses whose allowance has refilled.
    pub fn prune(&self) {
        self.limited.limiter.prune();
    }
}

/// The per-address limiters of the HTTP edge.
pub struct AddressLimits {
    /// Requests to the authorization server's endpoints.
    pub authorization_server: Option<AddressLimiter>,
    /// Requests that fail authentication.
    pub failed_authentication: Option<AddressLimiter>,
}

impl AddressLimits {
    /// The limiters `config` asks for.
    pub fn new(config: &RateLimitConfig) -> Self {
        let keys = config.max_tracked_keys;
        let shared = shared_budgets(config);
        Self {
            authorization_server: AddressLimiter::new(
                "authorization_server",
                config.per_address.authorization_server,
                keys,
                shared.clone(),
            ),
            failed_authentication: AddressLimiter::new(
                "failed_authentication",
                config.per_address.failed_authentication,
                keys,
                shared,
            ),
        }
    }

    /// No limits.
    pub fn none() -> Self {
        Self {
            authorization_server: None,
            failed_authentication: None,
        }
    }

    /// Forgets the addresses whose allowance has refilled.
    pub fn prune(&self) {
        for limiter in [&self.authorization_server, &self.failed_authentication]
            .into_iter()
            .flatten()
        {
            limiter.prune();
        }
    }
}

/// The key an address is counted under: IPv4 as is (and IPv4-mapped IPv6 as IPv4),
/// IPv6 by its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<RateLimitConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn plugin(name: &str) -> PluginName {
        PluginName::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn overrides_pick_the_most_specific_budget() {
        let config = config(
            "per_user = \"100/min\"\nper_tool = \"1000/min\"\nper_user_tool = \"10/min\"\n\
             [plugins.weather]\nper_user_tool = \"5/min\"\n\
             [tools.forecast]\nper_tool = \"50/min\"\n",
        )
        .unwrap();
        let weather = plugin("weather");
        let rates = config.rates_for(&weather, "forecast");
        assert_eq!(rates.per_tool, Some(Rate::parse("50/min").unwrap()));
        assert_eq!(rates.per_user_tool, Some(Rate::parse("5/min").unwrap()));
        let rates = config.rates_for(&plugin("other"), "echo");
        assert_eq!(rates.per_tool, Some(Rate::parse("1000/min").unwrap()));
        assert_eq!(rates.per_user_tool, Some(Rate::parse("10/min").unwrap()));
        assert!(config.check(&[&weather]).is_ok());
        let err = config.check(&[&plugin("other")]).unwrap_err();
        assert!(err.contains("[rate_limits.plugins.weather]"), "{err}");
        let err = config.check_tools(|t| t == "echo").unwrap_err();
        assert!(err.contains("[rate_limits.tools.forecast]"), "{err}");
    }

    #[test]
    fn bad_rate_config_is_refused_with_the_key() {
        let err = config("[plugins.weather]\nper_user = \"5/min\"\n").unwrap_err();
        assert!(err.contains("per_user"), "{err}");
        let err = config("per_user = \"5 a minute\"\n").unwrap_err();
        assert!(err.contains("5 a minute"), "{err}");
        let defaults = config("").unwrap();
        assert!(defaults.per_address.authorization_server.is_some());
        let off = config("[per_address]\nfailed_authentication = \"off\"\n").unwrap();
        assert!(off.per_address.failed_authentication.is_none());
        assert!(off.per_address.authorization_server.is_some());
        let err = config("[per_address]\nfailed_authentication = \"of\"\n").unwrap_err();
        assert!(err.contains("`of`"), "{err}");
        let err = config("max_tracked_keys = 3\n")
            .unwrap()
            .check(&[])
            .unwrap_err();
        assert!(err.contains("max_tracked_keys"), "{err}");
    }

    #[test]
    fn users_have_their_own_budgets_and_a_tool_budget_spans_them() {
        let limiter =
            ToolLimiter::new(&config("per_user_tool = \"2/min\"\nper_tool = \"3/min\"\n").unwrap());
        let weather = plugin("weather");
        limiter.check_here("alice", &weather, "forecast").unwrap();
        limiter.check_here("alice", &weather, "forecast").unwrap();
        let refused = limiter
            .check_here("alice", &weather, "forecast")
            .unwrap_err();
        assert_eq!(refused.budget, Budget::UserTool);
        assert_eq!(refused.retry_after_seconds(), 30);
        // Bob's own budget is untouched, but the tool's is nearly spent.
        limiter.check_here("bob", &weather, "forecast").unwrap();
        let refused = limiter.check_here("bob", &weather, "forecast").unwrap_err();
        assert_eq!(refused.budget, Budget::Tool);
        assert_eq!(refused.retry_after_seconds(), 20);
        // Another tool has budgets of its own.
        limiter.check_here("alice", &weather, "alerts").unwrap();
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(19_001)), 20);
        assert_eq!(whole_seconds(Duration::from_secs(20)), 20);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
        let limiter =
            AddressLimiter::new("test", Some(Rate::parse("1/min").unwrap()), 100, None).unwrap();
        let check = |address| futures::executor::block_on(limiter.check(address));
        check(a).unwrap();
        assert!(check(b).is_err());
        check(c).unwrap();
    }
}
