//! Reading the attributes that decide what the checker sees: test-only code is left
//! out (tests legitimately reach across modules), `#[path]` moves a module's file,
//! `#[macro_use]`/`#[macro_export]` widen where a `macro_rules!` can be called from.

use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Lit, Meta, Token};

/// True when the item exists only in test builds: `#[cfg(test)]` (also inside
/// `all(..)`), or a test function (`#[test]`, `#[tokio::test]`, `#[bench]`).
///
/// `#[cfg(any(test, feature = "x"))]` is not test-only: the item is also built
/// without tests, so its references are real dependencies.
pub fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        if path.is_ident("cfg") {
            return match attr.parse_args::<Meta>() {
                Ok(meta) => cfg_requires_test(&meta),
                Err(_) => false,
            };
        }
        // `#[test]`, `#[bench]` and runtime test macros such as `#[tokio::test]`.
        matches!(attr.meta, Meta::Path(_) | Meta::List(_))
            && path
                .segments
                .last()
                .is_some_and(|seg| seg.ident == "test" || seg.ident == "bench")
    })
}

/// Whether a `cfg` predicate can only hold in a test build.
fn cfg_requires_test(meta: &Meta) -> bool {
    match meta {
        Meta::Path(path) => path.is_ident("test"),
        Meta::List(list) => {
            let nested = match list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            {
                Ok(nested) => nested,
                Err(_) => return false,
            };
            if list.path.is_ident("all") {
                nested.iter().any(cfg_requires_test)
            } else if list.path.is_ident("any") {
                !nested.is_empty() && nested.iter().all(cfg_requires_test)
            } else {
                // `not(..)` never requires test; unknown predicates are assumed not to.
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}

/// The value of `#[path = "..."]`, if any.
pub fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(s) => Some(s.value()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

/// Whether the attributes include the bare marker `#[name]` (e.g. `macro_use`).
pub fn has_marker(attrs: &[Attribute], name: &str) -> bool {
    attrs.iter().any(|attr| attr.path().is_ident(name))
}

/// The attributes of an item, for the kinds that carry any.
pub fn item_attrs(item: &syn::Item) -> &[Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(src: &str) -> Vec<Attribute> {
        let item: syn::ItemFn = syn::parse_str(&format!("{src} fn f() {{}}")).unwrap();
        item.attrs
    }

    #[test]
    fn test_only_predicates() {
        assert!(is_test_only(&attrs("#[cfg(test)]")));
        assert!(is_test_only(&attrs("#[cfg(all(test, unix))]")));
        assert!(is_test_only(&attrs("#[cfg(any(test, all(test, unix)))]")));
        assert!(is_test_only(&attrs("#[test]")));
        assert!(is_test_only(&attrs(
            "#[tokio::test(flavor = \"multi_thread\")]"
        )));
        assert!(!is_test_only(&attrs("#[cfg(not(test))]")));
        assert!(!is_test_only(&attrs("#[cfg(any(test, feature = \"x\"))]")));
        assert!(!is_test_only(&attrs("#[cfg(unix)]")));
        assert!(!is_test_only(&attrs("#[inline]")));
    }

    #[test]
    fn path_attribute() {
        assert_eq!(
            path_attr(&attrs("#[path = \"x/y.rs\"]")).as_deref(),
            Some("x/y.rs")
        );
        assert_eq!(path_attr(&attrs("#[inline]")), None);
    }
}
