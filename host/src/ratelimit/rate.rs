//! A rate as operators write it: `"60/min"`, `"10/s"`, `"1000/hour"`, `"5/30s"`, or a
//! table `{ rate = "60/min", burst = 10 }`. Without a burst, a whole period's count may
//! be spent at once (then it refills evenly): GCRA's usual reading, and governor's.

use governor::Quota;
use serde::Deserialize;
use std::num::NonZeroU32;
use std::time::Duration;

/// The largest count one rate may allow per period: past this a limit is no limit.
const MAX_COUNT: u32 = 10_000_000;

/// How many calls per how long, and how many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per `period`.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Calls allowed at once, from a full bucket.
    pub burst: NonZeroU32,
}

/// A rate as TOML holds it: a string, or a table with `rate` and an optional `burst`.
impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

impl<'de> serde::de::Visitor<'de> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a rate like \"60/min\", or a table { rate = \"60/min\", burst = 10 }")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Rate, E> {
        Rate::parse(text).map_err(E::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Rate, A::Error> {
        use serde::de::Error;
        let (mut rate, mut burst) = (None::<String>, None::<u32>);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "rate" => rate = Some(map.next_value()?),
                "burst" => burst = Some(map.next_value()?),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown key `{other}` in a rate; expected `rate` and `burst`"
                    )));
                }
            }
        }
        let rate =
            rate.ok_or_else(|| A::Error::custom("a rate table needs `rate = \"N/period\"`"))?;
        let parsed = Rate::parse(&rate).map_err(A::Error::custom)?;
        match burst {
            None => Ok(parsed),
            Some(burst) => parsed.with_burst(burst).map_err(A::Error::custom),
        }
    }
}

impl Rate {
    /// Parses `"COUNT/PERIOD"`: the period a unit (`s`, `sec`, `second`, `min`,
    /// `minute`, `h`, `hour`, `day`) or a duration (`"30s"`, `"5m"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let shape = || format!("`{text}` is not a rate like \"60/min\" or \"10/s\"");
        let (count, period) = text.trim().split_once('/').ok_or_else(shape)?;
        let count: u32 = count.trim().parse().map_err(|_| shape())?;
        let count = NonZeroU32::new(count)
            .ok_or_else(|| format!("`{text}`: a rate must allow at least one call"))?;
        if count.get() > MAX_COUNT {
            return Err(format!(
                "`{text}`: at most {MAX_COUNT} per period; leave the limit out for none"
            ));
        }
        let period = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other).map_err(|_| {
                format!(
                    "`{text}`: unknown period `{other}`; use s, min, hour, day or a duration \
                     like 30s"
                )
            })?,
        };
        if period.is_zero() || period > Duration::from_secs(7 * 86_400) {
            return Err(format!(
                "`{text}`: the period must be longer than zero and at most a week"
            ));
        }
        Ok(Self {
            count,
            period,
            burst: count,
        })
    }

    fn with_burst(self, burst: u32) -> Result<Self, String> {
        let burst = NonZeroU32::new(burst)
            .filter(|b| b.get() <= MAX_COUNT)
            .ok_or_else(|| format!("burst = {burst}: must be between 1 and {MAX_COUNT}"))?;
        Ok(Self { burst, ..self })
    }

    /// The time one call's allowance takes to refill.
    pub fn interval(&self) -> Duration {
        (self.period / self.count.get()).max(Duration::from_nanos(1))
    }

    /// The rate as governor's quota.
    pub fn quota(&self) -> Quota {
        Quota::with_period(self.interval())
            .expect("the interval is at least a nanosecond")
            .allow_burst(self.burst)
    }
}

impl Rate {
    /// The period in words: `minute`, `hour`, or a duration like `30s`.
    pub fn per(&self) -> String {
        let whole = self.period.subsec_nanos() == 0;
        match self.period.as_secs() {
            1 if whole => "second".to_owned(),
            60 if whole => "minute".to_owned(),
            3600 if whole => "hour".to_owned(),
            86_400 if whole => "day".to_owned(),
            _ => humantime::format_duration(self.period).to_string(),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {}", self.count, self.per())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_every_spelling() {
        for (text, count, secs) in [
            ("60/min", 60, 60),
            ("10/s", 10, 1),
            (" 1000 / hour ", 1000, 3600),
            ("5/30s", 5, 30),
            ("2/day", 2, 86_400),
            ("3/5m", 3, 300),
        ] {
            let rate = Rate::parse(text).unwrap();
            assert_eq!(rate.count.get(), count, "{text}");
            assert_eq!(rate.period, Duration::from_secs(secs), "{text}");
            assert_eq!(rate.burst, rate.count, "{text}");
        }
        assert_eq!(Rate::parse("60/min").unwrap().to_string(), "60 per minute");
        assert_eq!(Rate::parse("5/30s").unwrap().to_string(), "5 per 30s");
        assert_eq!(
            Rate::parse("60/min").unwrap().interval(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for (text, needle) in [
            ("60", "not a rate"),
            ("x/min", "not a rate"),
            ("-1/min", "not a rate"),
            ("0/min", "at least one call"),
            ("60/fortnight", "unknown period `fortnight`"),
            ("60/0s", "longer than zero"),
            ("1/30days", "at most a week"),
            ("20000000/s", "at most 10000000"),
        ] {
            let err = Rate::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_table_sets_the_burst() {
        #[derive(Deserialize)]
        struct T {
            r: Rate,
        }
        let t: T = toml::from_str("r = { rate = \"60/min\", burst = 5 }").unwrap();
        assert_eq!(t.r.burst.get(), 5);
        assert_eq!(t.r.count.get(), 60);
        let err = toml::from_str::<T>("r = { rate = \"60/min\", burst = 0 }")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("burst = 0"), "{err}");
        let err = toml::from_str::<T>("r = { rate = \"60/min\", burts = 5 }")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown key `burts`"), "{err}");
        let err = toml::from_str::<T>("r = \"60/fortnight\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fortnight"), "{err}");
        let t: T = toml::from_str("r = \"10/s\"").unwrap();
        assert_eq!(t.r.burst.get(), 10);
    }
}
