//! Paginated lists (tags, catalog, referrers): `n`, `last` and the
//! `Link: <…>; rel="next"` the registry answers with, and whether the client
//! asked for the next page.

use url::Url;

use crate::Works;
use crate::errors::one_line;
use crate::hash::HashMap;
use crate::http::query_first;
use crate::model::{Annotation, AnnotationKind, FlowKind};

/// The `rel="next"` target of a `Link` header, resolved against `base`.
pub(crate) fn next_link(value: &str, base: Option<&Url>) -> Option<Url> {
    value.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if !next {
            return None;
        }
        match base {
            Some(base) => base.join(target).ok(),
            None => Url::parse(target).ok(),
        }
    })
}

fn is_list(kind: &FlowKind) -> bool {
    matches!(
        kind,
        FlowKind::TagsList { .. } | FlowKind::Catalog { .. } | FlowKind::Referrers { .. }
    )
}

/// One list of one operation: (operation, list kind, repository).
type ListKey = (
    Option<usize>,
    std::mem::Discriminant<FlowKind>,
    Option<String>,
);

/// Annotates each page, and the last page a client read when the registry
/// offered another.
pub(crate) fn annotate(works: &mut Works) {
    // The pages each operation asked for, by (operation, kind, repository).
    let mut asked: HashMap<ListKey, Vec<usize>> = HashMap::default();
    for (i, w) in works.items.iter().enumerate() {
        if is_list(&w.local.kind) {
            asked
                .entry((
                    w.operation,
                    std::mem::discriminant(&w.local.kind),
                    w.local.kind.repository().map(str::to_owned),
                ))
                .or_default()
                .push(i);
        }
    }
    let mut notes: Vec<(usize, Annotation)> = Vec::new();
    for pages in asked.values() {
        for (k, &i) in pages.iter().enumerate() {
            let Some(w) = works.items.get(i) else {
                continue;
            };
            if !w.local.ok() {
                continue;
            }
            let url = w.local.url.as_ref();
            let n = url.and_then(|u| query_first(u, "n"));
            let last = url.and_then(|u| query_first(u, "last"));
            let next = w
                .local
                .response_header("link")
                .and_then(|l| next_link(l, url));
            if n.is_none() && last.is_none() && next.is_none() {
                continue;
            }
            let mut text = "page".to_owned();
            if let Some(n) = &n {
                text.push_str(&format!(" of at most {}", one_line(n)));
            }
            if let Some(last) = &last {
                text.push_str(&format!(" after {:?}", one_line(last)));
            }
            text.push_str(if next.is_some() {
                "; the registry says more follow (Link rel=next)"
            } else {
                "; the last page"
            });
            notes.push((i, Annotation::info(AnnotationKind::Pagination, text)));
            let followed = pages.get(k + 1).is_some();
            if next.is_some() && !followed {
                notes.push((
                    i,
                    Annotation::warning(
                        AnnotationKind::Pagination,
                        "the client stopped here although the registry offered a next page: the list it saw is incomplete",
                    ),
                ));
            }
        }
    }
    for (i, note) in notes {
        if let Some(w) = works.items.get_mut(i) {
            w.local.annotations.push(note);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let base = Url::parse("https://r.example/v2/_catalog?n=2").ok();
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#, base.as_ref()).map(String::from),
            Some("https://r.example/v2/_catalog?last=b&n=2".to_owned())
        );
        assert_eq!(
            next_link(
                r#"<https://q.example/v2/x/tags/list?next_page=abc>; rel=next"#,
                None
            )
            .map(String::from),
            Some("https://q.example/v2/x/tags/list?next_page=abc".to_owned())
        );
        assert_eq!(next_link(r#"</v2/x>; rel="prev""#, base.as_ref()), None);
        assert_eq!(next_link("garbage", base.as_ref()), None);
    }
}
