//! `#[ork::task]`: turns `fn f([ctx: &Context,] [input: Input]) -> ork::Result<Output>` into the program's `main`.
//! The parameters may come in either order; `Context` may be taken by reference or by value; the return type may
//! be any `Result<T, E>` with `E: Into<ork::TaskError>`, a plain serializable value, or nothing (output `null`).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

#[proc_macro_attribute]
pub fn task(attr: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// How the generated closure passes the context to the user's function.
enum Arg {
    CtxRef,
    CtxValue,
    Input,
}

/// `Context`, `ork::Context`, ... (by value) or a reference to one.
fn context_kind(ty: &Type) -> Option<Arg> {
    match ty {
        Type::Reference(r) => match context_kind(&r.elem) {
            Some(Arg::CtxValue) if r.mutability.is_none() => Some(Arg::CtxRef),
            _ => None,
        },
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            (last.ident == "Context" && last.arguments.is_empty()).then_some(Arg::CtxValue)
        }
        Type::Paren(p) => context_kind(&p.elem),
        Type::Group(g) => context_kind(&g.elem),
        _ => None,
    }
}

/// A return type spelled `Result<..>` (any path ending in `Result`, e.g. `ork::Result<T>`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().map_or(false, |s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(attr, "#[task] takes no arguments"));
    }
    let mut func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(a, "#[task] functions cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&sig.generics, "#[task] functions cannot be generic"));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new_spanned(v, "#[task] functions cannot be variadic"));
    }

    let mut args = Vec::new();
    let mut input_ty: Option<Type> = None;
    let mut has_ctx = false;
    for arg in &sig.inputs {
        let pat = match arg {
            FnArg::Receiver(r) => return Err(syn::Error::new_spanned(r, "#[task] functions cannot take self")),
            FnArg::Typed(p) => p,
        };
        match context_kind(&pat.ty) {
            Some(kind) => {
                if has_ctx {
                    return Err(syn::Error::new_spanned(pat, "#[task]: only one Context parameter"));
                }
                has_ctx = true;
                args.push(kind);
            }
            None => {
                if input_ty.is_some() {
                    return Err(syn::Error::new_spanned(
                        pat,
                        "#[task]: one input parameter (a serde Deserialize type) and optionally a Context",
                    ));
                }
                input_ty = Some((*pat.ty).clone());
                args.push(Arg::Input);
            }
        }
    }

    let span = if sig.inputs.is_empty() { Span::call_site() } else { sig.inputs.span() };
    let ctx = format_ident!("__ork_ctx");
    let input = format_ident!("__ork_input");
    let call_args = args.iter().map(|a| match a {
        Arg::CtxRef => quote!(#ctx),
        Arg::CtxValue => quote!(::std::clone::Clone::clone(#ctx)),
        Arg::Input => quote!(#input),
    });
    // A function named `main` is renamed: the generated `main` takes its place.
    if func.sig.ident == "main" {
        func.sig.ident = format_ident!("__ork_task_main", span = func.sig.ident.span());
    }
    let name = &func.sig.ident;
    let call = quote!(#name(#(#call_args),*));
    let body = match &func.sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => call,
        _ => quote!(::ork::Plain(#call)),
    };
    let input_ty = input_ty.unwrap_or_else(|| syn::parse_quote!(::ork::serde_json::Value));
    let main = quote_spanned! {span=>
        fn main() {
            ::std::process::exit(::ork::main(|#ctx: &::ork::Context, #input: #input_ty| #body));
        }
    };
    Ok(quote! {
        #func
        #main
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(item: &str) -> String {
        let out = expand(TokenStream::new(), item.parse().unwrap()).unwrap();
        syn::parse2::<syn::File>(out.clone()).expect("expansion parses as a file");
        out.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn error(attr: &str, item: &str) -> String {
        match expand(attr.parse().unwrap(), item.parse().unwrap()) {
            Ok(out) => panic!("expected an error, got {}", out),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ctx_by_reference_then_input() {
        let s = expanded("fn double(ctx: &Context, input: Input) -> ork::Result<Output> { todo!() }");
        assert!(s.contains("fn double (ctx : & Context , input : Input)"), "{}", s);
        assert!(s.contains("fn main ()"), "{}", s);
        assert!(s.contains("| __ork_ctx : & :: ork :: Context , __ork_input : Input | double (__ork_ctx , __ork_input)"), "{}", s);
    }

    #[test]
    fn input_then_ctx_by_value_and_main_is_renamed() {
        let s = expanded("fn main(input: In, ctx: ork::Context) -> Result<Out, MyError> { todo!() }");
        assert!(s.contains("fn __ork_task_main (input : In , ctx : ork :: Context)"), "{}", s);
        assert!(s.contains("__ork_task_main (__ork_input , :: std :: clone :: Clone :: clone (__ork_ctx))"), "{}", s);
        assert_eq!(s.matches("fn main ()").count(), 1, "{}", s);
    }

    #[test]
    fn without_ctx_input_or_result() {
        let s = expanded("fn hello() -> String { String::new() }");
        assert!(s.contains("__ork_input : :: ork :: serde_json :: Value | :: ork :: Plain (hello ())"), "{}", s);
        let s = expanded("fn only(input: Vec<i32>) { }");
        assert!(s.contains("__ork_input : Vec < i32 > | :: ork :: Plain (only (__ork_input))"), "{}", s);
    }

    #[test]
    fn rejected_shapes() {
        assert!(error("x", "fn f() {}").contains("takes no arguments"));
        assert!(error("", "async fn f() {}").contains("cannot be async"));
        assert!(error("", "fn f<T>(x: T) {}").contains("cannot be generic"));
        assert!(error("", "fn f(a: A, b: B) {}").contains("one input parameter"));
        assert!(error("", "fn f(a: &Context, b: Context) {}").contains("only one Context"));
        assert!(error("", "struct S;").contains("expected `fn`"));
    }

    #[test]
    fn context_detection() {
        let ty = |s: &str| syn::parse_str::<Type>(s).unwrap();
        assert!(matches!(context_kind(&ty("&ork::Context")), Some(Arg::CtxRef)));
        assert!(matches!(context_kind(&ty("Context")), Some(Arg::CtxValue)));
        assert!(context_kind(&ty("&mut Context")).is_none());
        assert!(context_kind(&ty("Context<T>")).is_none());
        assert!(context_kind(&ty("MyContext")).is_none());
        assert!(is_result(&ty("ork::Result<u8>")) && is_result(&ty("Result<u8, E>")) && !is_result(&ty("Option<u8>")));
    }
}
