//! `#[timethis]`, after tracing-attributes' `expand.rs`: the method keeps its
//! signature, visibility, attributes and `async`; only what is needed to time it is
//! added.
//!
//! - On a section of `Lifecycle` (`preloop`, `main_loop`, `postloop`, `on_finish`) the
//!   method is left untouched and the associated const `__TIMETHIS_<SECTION> = true` is
//!   added next to it. The engine reads the const and times the call itself, so a
//!   section that is not marked pays nothing, not even a branch at run time.
//! - On any other method, which must take a `&mut Context`, the body runs inside a
//!   closure (an `async` block for `async fn`), so that `return` and `?` keep their
//!   meaning, and the elapsed time is then added to the named timer
//!   `cx.timers_mut().named_mut("<method>")`. The closure's result is bound with the
//!   method's own return type, spanned on the user's tokens, so a type error in the body
//!   is reported against the signature as it would be without the attribute.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, ImplItemFn, Pat, ReturnType, Type};

use crate::ctxt::Ctxt;

/// The sections the engine times itself, with the const that marks them.
const SECTIONS: &[(&str, &str)] = &[
    ("preloop", "__TIMETHIS_PRELOOP"),
    ("main_loop", "__TIMETHIS_MAIN_LOOP"),
    ("postloop", "__TIMETHIS_POSTLOOP"),
    ("on_finish", "__TIMETHIS_ON_FINISH"),
];

/// `#[timethis]`.
pub(crate) fn timethis(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned_by(
            &args,
            "#[timethis] takes no arguments: a section's time goes to its own timer, another \
             method's to the timer named after the method",
        );
    }
    let Ok(method) = syn::parse2::<ImplItemFn>(item.clone()) else {
        cx.error_at(
            Span::call_site(),
            "#[timethis] goes on a method with a body: a section of `impl Lifecycle` \
             (`preloop`, `main_loop`, `postloop`, `on_finish`), or a method that takes \
             `cx: &mut Context`",
        );
        return finish(cx, item);
    };
    if let Some(constness) = &method.sig.constness {
        cx.error_spanned_by(
            constness,
            "#[timethis] cannot time a `const fn`: reading the clock is not allowed in const \
             evaluation; remove `const` or #[timethis]",
        );
        return finish(cx, item);
    }
    let name = method.sig.ident.to_string();
    if let Some((_, marker)) = SECTIONS.iter().find(|(section, _)| *section == name) {
        let marker = format_ident!("{}", marker, span = method.sig.ident.span());
        let output = quote! {
            #method
            const #marker: bool = true;
        };
        return finish(cx, output);
    }
    let output = match wrap(&cx, &method, &name) {
        Some(wrapped) => wrapped,
        None => item,
    };
    finish(cx, output)
}

fn finish(cx: Ctxt, output: TokenStream) -> TokenStream {
    match cx.check() {
        Ok(()) => output,
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote! { #errors #output }
        }
    }
}

/// The method with its body timed into `cx.timers_mut().named_mut(name)`.
fn wrap(cx: &Ctxt, method: &ImplItemFn, name: &str) -> Option<TokenStream> {
    let Some(context) = context_param(cx, method) else {
        cx.error_spanned_by(
            &method.sig.ident,
            format!(
                "#[timethis] on `{name}` needs a `&mut Context` parameter to record the time in: \
                 add `cx: &mut Context`, or time a block inside with \
                 `let _t = cx.timers_mut().named_mut(\"{name}\").time();`; on `Lifecycle` \
                 sections it works as is: `preloop`, `main_loop`, `postloop`, `on_finish`"
            ),
        );
        return None;
    };
    let ImplItemFn {
        attrs,
        vis,
        defaultness,
        sig,
        block,
    } = method;
    let stmts = &block.stmts;
    // The result is bound with the method's return type when it can be written in a
    // `let` (not `impl Trait`), which pins the type of `?` and of every `return`.
    let ret_ty = match &sig.output {
        ReturnType::Default => Some(quote! { () }),
        ReturnType::Type(_, ty) if !contains_impl_trait(ty) => Some(ty.to_token_stream()),
        ReturnType::Type(..) => None,
    };
    let typed_body = match &ret_ty {
        Some(ty) => {
            let span = sig.output.span();
            quote_spanned! {span=>
                let __timethis_ret: #ty = { #(#stmts)* };
                __timethis_ret
            }
        }
        None => quote! { #(#stmts)* },
    };
    let run = if sig.asyncness.is_some() {
        quote! { async { #typed_body }.await }
    } else {
        quote! { (|| { #typed_body })() }
    };
    let timer = syn::LitStr::new(name, sig.ident.span());
    Some(quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            let __timethis_start = ::std::time::Instant::now();
            #[allow(clippy::redundant_closure_call)]
            let __timethis_result = #run;
            #context
                .timers_mut()
                .named_mut(#timer)
                .add_time(__timethis_start.elapsed());
            __timethis_result
        }
    })
}

/// The name of the parameter whose type is `&mut Context` (any path ending in
/// `Context`). A parameter of that type with a pattern other than a name is an error.
fn context_param(cx: &Ctxt, method: &ImplItemFn) -> Option<TokenStream> {
    for input in &method.sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        if !is_mut_context(&arg.ty) {
            continue;
        }
        return match &*arg.pat {
            Pat::Ident(ident) if ident.subpat.is_none() => Some(ident.ident.to_token_stream()),
            other => {
                cx.error_spanned_by(
                    other,
                    "#[timethis] needs a name for the `&mut Context` parameter, like `cx`, to \
                     record the time in",
                );
                // Suppress the "needs a `&mut Context`" error: one is enough.
                Some(quote! { cx })
            }
        };
    }
    None
}

fn is_mut_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => match &*r.elem {
            Type::Path(p) if p.qself.is_none() => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Context" && s.arguments.is_none()),
            Type::Group(g) => is_mut_context(&Type::Reference(syn::TypeReference {
                elem: g.elem.clone(),
                ..r.clone()
            })),
            _ => false,
        },
        Type::Group(g) => is_mut_context(&g.elem),
        Type::Paren(p) => is_mut_context(&p.elem),
        _ => false,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}
