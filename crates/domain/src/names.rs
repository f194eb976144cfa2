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

/// Declares a lowercase string enum: `ALL` (declaration order), `as_str`, `FromStr`
/// (failing with [`ParseEnumError`] naming `$kind`), `Display`, and serde as the same
/// names. The calling crate needs `serde` among its dependencies.
#[macro_export]
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

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
