//! Code generation of `derive(Process)`.
//!
//! The output names only `::process_runtime::...` and `::core::...` paths and lives in
//! a `const _: () = { ... };` block, so nothing leaks into the user's namespace. On
//! error the real impl is replaced by a stub (after thiserror-impl's `fallback.rs`) so
//! that the user sees the errors of the attribute, not a cascade of "`Process` is not
//! implemented" wherever the type is started.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote};
use syn::DeriveInput;

use crate::attr;
use crate::ctxt::Ctxt;
use crate::valid::{self, Config};

/// `#[derive(Process)]`.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    valid::check_item(&cx, input);
    let attrs = attr::parse(&cx, &input.attrs);
    let config = valid::check_attrs(&cx, input, attrs);
    match cx.check() {
        Ok(()) => expand(input, &config),
        Err(errors) => fallback(input, &errors),
    }
}

fn expand(input: &DeriveInput, config: &Config) -> TokenStream {
    let ty = &input.ident;
    let tag = {
        let ident = ty.to_string();
        ident.strip_prefix("r#").unwrap_or(&ident).to_owned()
    };
    let name = &config.name;
    let mut builder = quote! { ::process_runtime::ProcessConfig::new(#name) };
    if let Some(n) = config.num_loops {
        let n = Literal::u64_suffixed(n);
        builder.extend(quote! { .with_num_loops(::core::option::Option::Some(#n)) });
    }
    if let Some(nanos) = config.join_in {
        let d = duration(nanos);
        builder.extend(quote! { .with_join_in(::core::option::Option::Some(#d)) });
    }
    if let Some(n) = config.lives {
        let n = Literal::u32_suffixed(n);
        builder.extend(quote! { .with_lives(#n) });
    }
    for (section, limit) in &config.timeouts {
        let variant = format_ident!("{}", section.variant());
        let limit = match limit {
            Some(nanos) => {
                let d = duration(*nanos);
                quote! { ::core::option::Option::Some(#d) }
            }
            None => quote! { ::core::option::Option::None },
        };
        builder.extend(quote! {
            .with_timeout(::process_runtime::Section::#variant, #limit)
        });
    }
    if let Some(daemon) = config.daemon {
        builder.extend(quote! { .with_daemon(#daemon) });
    }
    if let Some(n) = config.mailbox {
        let n = Literal::u32_suffixed(n);
        builder.extend(quote! { .with_mailbox(#n) });
    }
    // A missing `Serialize`/`Deserialize`/`Lifecycle` is left to rustc's own message on
    // the impl below: it names the missing trait and serde's note says which derive to
    // add. An extra assertion with `#[diagnostic::on_unimplemented]` was tried: its
    // message reads better, but the impl and the registration still fail with rustc's
    // default, so the user got two to four errors instead of one or two.
    quote! {
        const _: () = {
            #[::process_runtime::__private::linkme::distributed_slice(::process_runtime::__private::REGISTRY)]
            #[linkme(crate = ::process_runtime::__private::linkme)]
            static __PROCESS_REGISTRATION: ::process_runtime::__private::Registration =
                ::process_runtime::__private::Registration::new::<#ty>(
                    ::core::concat!(::core::module_path!(), "::", #tag),
                );

            #[automatically_derived]
            impl ::process_runtime::Process for #ty {
                fn config() -> ::process_runtime::ProcessConfig {
                    #builder
                }

                fn __registration() -> &'static ::process_runtime::__private::Registration {
                    &__PROCESS_REGISTRATION
                }
            }

            ::process_runtime::__private::auto_entry!();
        };
    }
}

/// `Duration::from_nanos(N)`, with the literal's digits grouped for readability.
fn duration(nanos: u64) -> TokenStream {
    let lit = syn::LitInt::new(&format!("{}_u64", group_digits(nanos)), Span::call_site());
    quote! { ::core::time::Duration::from_nanos(#lit) }
}

fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// The errors, plus an impl of `Process` that cannot fail to compile itself: its
/// where clause holds the supertraits behind a higher-ranked lifetime (trivial bounds
/// are unstable, so `for<'__w>` keeps rustc from checking them at the impl), and the
/// generics are the type's own, so even a generic type gets a well-formed impl.
fn fallback(input: &DeriveInput, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let ty = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let predicates = where_clause.into_iter().flat_map(|w| w.predicates.iter());
    let where_clause = quote! { where #(#predicates,)* };
    quote! {
        #errors

        #[automatically_derived]
        impl #impl_generics ::process_runtime::Process for #ty #ty_generics
        #where_clause
            for<'__w> #ty #ty_generics: ::process_runtime::__private::ProcessBounds,
        {
            fn config() -> ::process_runtime::ProcessConfig {
                ::core::unreachable!()
            }

            fn __registration() -> &'static ::process_runtime::__private::Registration {
                ::core::unreachable!()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1_000");
        assert_eq!(group_digits(300_000_000_000), "300_000_000_000");
        assert_eq!(group_digits(1_500_000_000), "1_500_000_000");
    }
}
