//! Resolutions and concept lists as JSON, for the C ABI and the CLI. Written by hand: the library links no
//! JSON crate (serde_json is the CLI's).

use std::fmt::Write;

use super::{Concept, Laterality, Resolution, Vocabulary};

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(s: Option<&str>) -> String {
    s.map(quote).unwrap_or_else(|| "null".into())
}

/// One concept: id, name, side, region, parent, labels, SNOMED codes and colour.
pub fn concept_json(c: &Concept) -> String {
    let side = match c.side {
        Some(Laterality::Left) => Some("left"),
        Some(Laterality::Right) => Some("right"),
        Some(Laterality::Midline) => Some("midline"),
        None => None,
    };
    let snomed = match &c.snomed {
        Some(s) => format!(
            "{{\"category\":{},\"category_meaning\":{},\"type\":{},\"type_meaning\":{},\"modifier\":{},\"modifier_meaning\":{}}}",
            quote(&s.category),
            quote(&s.category_meaning),
            quote(&s.type_code),
            quote(&s.type_meaning),
            opt(s.modifier.as_deref()),
            opt(s.modifier_meaning.as_deref())
        ),
        None => "null".into(),
    };
    let color = match c.color {
        Some([r, g, b]) => format!("[{r},{g},{b}]"),
        None => "null".into(),
    };
    let labels = c.labels.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",");
    format!(
        "{{\"id\":{},\"name\":{},\"side\":{},\"region\":{},\"parent\":{},\"atlas\":{},\"labels\":[{labels}],\"snomed\":{snomed},\"color\":{color}}}",
        quote(&c.id),
        quote(&c.name),
        opt(side),
        quote(c.region.name()),
        opt(c.parent.as_deref().or(c.parent_name.as_deref())),
        opt(c.atlas.as_deref()),
    )
}

/// A resolution: the phrase, display name, concepts, lesion, modifiers, method, score and alternatives.
pub fn resolution_json(r: &Resolution, v: &Vocabulary) -> String {
    let concepts = r.concepts.iter().filter_map(|id| v.get(id)).map(concept_json).collect::<Vec<_>>().join(",");
    let modifiers = r.modifiers.iter().map(|m| quote(m)).collect::<Vec<_>>().join(",");
    let alternatives = r
        .alternatives
        .iter()
        .map(|a| format!("{{\"id\":{},\"name\":{},\"score\":{:.4}}}", quote(&a.id), quote(&a.name), a.score))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{{\"text\":{},\"name\":{},\"concepts\":[{concepts}],\"lesion\":{},\"modifiers\":[{modifiers}],\"method\":{},\"score\":{:.4},\"alternatives\":[{alternatives}]}}",
        quote(&r.text),
        quote(&r.name(v)),
        opt(r.lesion.map(|k| k.name())),
        quote(r.method.name()),
        r.score,
    )
}

/// A JSON array of concepts.
pub fn concepts_json<'a>(cs: impl IntoIterator<Item = &'a Concept>) -> String {
    format!("[{}]", cs.into_iter().map(concept_json).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
