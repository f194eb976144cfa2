//! Small enums with one stable lowercase name per variant.
//!
//! The name (`as_str`, `FromStr`, `Display`) is what the database, the configuration,
//! the HTTP API and the reports hold, so renaming a variant never changes stored data.
//! One macro for every such enum in the service (the program's statuses, the campaign
//! tables' states), so they parse, print and list their variants the same way.

/// A stored or configured string that names no variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
}

impl ParseEnumError {
    /// `value` is cut to 40 characters: it may come from a request or a corrupt row.
    pub fn new(kind: &'static str, value: &str) -> Self {
        ParseEnumError {
            kind,
            value: value.chars().take(40).collect(),
        }
    }
}

/// Declares a lowercase string enum: `ALL` and `NAMES` (declaration order), `as_str`,
/// `FromStr` (failing with [`ParseEnumError`] naming `$kind`) and `Display`.
///
/// No serde: the name is the enum's only outside form, and whoever writes it to the
/// outside world uses `as_str` — the HTTP API its own views (`tongdai::api`), the store
/// its columns — so a wire format is never decided here.
#[macro_export]
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// Every variant's name, in declaration order (`NAMES[i] == ALL[i].as_str()`).
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::ParseEnumError;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err($crate::ParseEnumError::new($kind, s)),
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
