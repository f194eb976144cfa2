//! The stable names of the program's and the store's enums as the API reads them from
//! a request: `?status=waiting`, `"method": "video"`.
//!
//! Those enums carry no serde (their name is `as_str`/`FromStr`, which the database,
//! the reports and the API share; the API writes it in its views). [`ByName`] reads one
//! exactly as the `#[derive(Deserialize)]` the enums used to have did — through
//! `deserialize_enum`, with serde's own messages — so a caller who sends a bad name
//! still gets ``unknown variant `x`, expected one of `a`, `b` `` naming the field, and
//! what a body may hold did not change (`wire_tests` compares both with a derived enum).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, Unexpected, VariantAccess, Visitor};

use crate::store::{AppointmentMethod, QueueStatus};
use tongdai_domain::program::{Channel, Group, Status};

/// An enum the API reads by name.
pub trait WireName: Copy + 'static {
    /// The type's name, as serde's messages say it (`enum Status`).
    const TYPE: &'static str;
    /// Every name, in declaration order (the variant index serde also accepts).
    const NAMES: &'static [&'static str];
    fn from_name(name: &str) -> Option<Self>;
}

/// A `T` read from its name (`Option<ByName<Status>>` for an optional parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByName<T>(pub T);

impl<'de, T: WireName> Deserialize<'de> for ByName<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_enum(T::TYPE, T::NAMES, EnumVisitor(PhantomData))
            .map(ByName)
    }
}

struct EnumVisitor<T>(PhantomData<T>);

impl<'de, T: WireName> Visitor<'de> for EnumVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "enum {}", T::TYPE)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<T, A::Error> {
        let (Variant(v), access) = data.variant::<Variant<T>>()?;
        access.unit_variant()?;
        Ok(v)
    }
}

/// The variant an identifier (a name, or serde's variant index) names.
struct Variant<T>(T);

impl<'de, T: WireName> Deserialize<'de> for Variant<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(IdentifierVisitor(PhantomData))
    }
}

struct IdentifierVisitor<T>(PhantomData<T>);

impl<T: WireName> IdentifierVisitor<T> {
    fn named<E: de::Error>(name: &str) -> Result<Variant<T>, E> {
        T::from_name(name)
            .map(Variant)
            .ok_or_else(|| E::unknown_variant(name, T::NAMES))
    }
}

impl<'de, T: WireName> Visitor<'de> for IdentifierVisitor<T> {
    type Value = Variant<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<Variant<T>, E> {
        usize::try_from(index)
            .ok()
            .and_then(|i| T::NAMES.get(i))
            .and_then(|name| T::from_name(name))
            .map(Variant)
            .ok_or_else(|| {
                let expected = format!("variant index 0 <= i < {}", T::NAMES.len());
                E::invalid_value(Unexpected::Unsigned(index), &expected.as_str())
            })
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Variant<T>, E> {
        Self::named(name)
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Variant<T>, E> {
        Self::named(&String::from_utf8_lossy(name))
    }
}

/// The `string_enum!` types: their names come with them.
macro_rules! string_enums {
    ($($t:ident),+) => {$(
        impl WireName for $t {
            const TYPE: &'static str = stringify!($t);
            const NAMES: &'static [&'static str] = $t::NAMES;
            fn from_name(name: &str) -> Option<Self> {
                name.parse().ok()
            }
        }
    )+};
}

string_enums!(Status, Channel, Group);

impl WireName for QueueStatus {
    const TYPE: &'static str = "QueueStatus";
    const NAMES: &'static [&'static str] = &["waiting", "claimed", "done", "cancelled"];
    fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

impl WireName for AppointmentMethod {
    const TYPE: &'static str = "AppointmentMethod";
    const NAMES: &'static [&'static str] = &["phone", "video"];
    fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the derived enum gave, which `ByName` must give again.
    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "snake_case")]
    enum Derived {
        Waiting,
        Claimed,
        Done,
        Cancelled,
    }

    fn name_of(d: Derived) -> &'static str {
        match d {
            Derived::Waiting => "waiting",
            Derived::Claimed => "claimed",
            Derived::Done => "done",
            Derived::Cancelled => "cancelled",
        }
    }

    #[derive(serde::Deserialize)]
    struct OldQuery {
        status: Option<Derived>,
    }

    #[derive(serde::Deserialize)]
    struct NewQuery {
        status: Option<ByName<QueueStatus>>,
    }

    #[test]
    fn reads_every_input_as_the_derived_enum_did() {
        let json_inputs = [
            r#""waiting""#,
            r#""cancelled""#,
            r#""Waiting""#,
            r#""""#,
            r#""x""#,
            "0",
            "3",
            "4",
            "-1",
            "null",
            "true",
            "1.5",
            r#"{"done":null}"#,
            r#"{"done":1}"#,
            r#"{"nope":null}"#,
            r#"{}"#,
            r#"["claimed"]"#,
        ];
        for input in json_inputs {
            let old = serde_json::from_str::<Derived>(input)
                .map(name_of)
                .map_err(|e| e.to_string());
            let new = serde_json::from_str::<ByName<QueueStatus>>(input)
                .map(|v| v.0.as_str())
                .map_err(|e| e.to_string());
            assert_eq!(new, old, "JSON {input}");
            let value: serde_json::Value = serde_json::from_str(input).expect("json");
            let old = serde_json::from_value::<Derived>(value.clone())
                .map(name_of)
                .map_err(|e| e.to_string());
            let new = serde_json::from_value::<ByName<QueueStatus>>(value)
                .map(|v| v.0.as_str())
                .map_err(|e| e.to_string());
            assert_eq!(new, old, "value {input}");
        }
        for q in [
            "",
            "status=done",
            "status=Done",
            "status=",
            "status=2",
            "status=a&status=b",
        ] {
            let old = serde_urlencoded::from_str::<OldQuery>(q)
                .map(|q| q.status.map(name_of))
                .map_err(|e| e.to_string());
            let new = serde_urlencoded::from_str::<NewQuery>(q)
                .map(|q| q.status.map(|s| s.0.as_str()))
                .map_err(|e| e.to_string());
            assert_eq!(new, old, "query {q}");
        }
    }

    fn names_of<T: WireName>(as_str: impl Fn(T) -> &'static str) {
        let past = de::value::U64Deserializer::<de::value::Error>::new(T::NAMES.len() as u64);
        assert_eq!(
            Variant::<T>::deserialize(past).err().map(|e| e.to_string()),
            Some(format!(
                "invalid value: integer `{}`, expected variant index 0 <= i < {}",
                T::NAMES.len(),
                T::NAMES.len()
            ))
        );
        for (i, name) in T::NAMES.iter().enumerate() {
            let v = T::from_name(name).unwrap_or_else(|| panic!("{name} names no {}", T::TYPE));
            assert_eq!(as_str(v), *name);
            // Formats that name variants by index (not JSON) reach `visit_u64`.
            let index = de::value::U64Deserializer::<de::value::Error>::new(i as u64);
            let by_index = Variant::<T>::deserialize(index).map(|v| as_str(v.0));
            assert_eq!(by_index.ok(), Some(*name));
        }
    }

    #[test]
    fn the_names_are_the_enums_own() {
        names_of::<QueueStatus>(QueueStatus::as_str);
        assert_eq!(QueueStatus::NAMES.len(), QueueStatus::ALL.len());
        names_of::<AppointmentMethod>(AppointmentMethod::as_str);
        names_of::<Status>(Status::as_str);
        names_of::<Channel>(Channel::as_str);
        names_of::<Group>(Group::as_str);
    }
}
