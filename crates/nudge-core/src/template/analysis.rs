//! What a template reads, found once when it compiles: the paths of event data it reads
//! (reported, and filled with nil before each render), the ranges to check against that data,
//! and the probes placed in its text (a loop tick at the start of every loop body, a mark at
//! the start of every `if`, `elsif`, `unless` and `else` body, a size check after every
//! `assign` and `capture`), and the filter that ends every `{{ }}` (it renders objects in key
//! order).

use std::collections::HashSet;

use super::data::{seg_key, Seg};
use super::lexer::{executable_regions, Lexed, Region};
use super::ranges::{check_range_size, Bound, RangeCheck};
use super::tokens::{is_literal_word, is_tag_keyword, parse_var, tokenize, Tok, Token, VarRef};
use super::{
    TemplateError, BODY, MAX_OUTPUT_BYTES, MAX_PATH_SEGMENTS, SIZE, SORTED, TICK, TOO_LARGE,
};

/// Where a variable's value comes from.
enum Origin {
    /// The render globals, at this path.
    Global(Vec<Seg>),
    /// Items of global data, through a loop variable (the path contains `Each`).
    LoopItem(Vec<Seg>),
    /// The template's own values (`assign`, `capture`, counters, ranges, `forloop`).
    Local,
}

pub(super) struct Analysis {
    pub(super) referenced: Vec<Vec<String>>,
    pub(super) fills: Vec<Vec<Seg>>,
    pub(super) range_checks: Vec<RangeCheck>,
    pub(super) insertions: Vec<(usize, String)>,
}

pub(super) struct Analyzer<'s> {
    source: &'s str,
    /// Names assigned or captured anywhere: their global value may be replaced mid-render.
    ever_assigned: HashSet<&'s str>,
    /// Names used by `increment` / `decrement`, which live beside the globals.
    counters: HashSet<&'s str>,
    /// Open loops: variable name and, when it walks global data, the path of that data.
    loops: Vec<(&'s str, Option<Vec<Seg>>)>,
    assigned: HashSet<&'s str>,
    captures: Vec<&'s str>,
    referenced: Vec<Vec<String>>,
    referenced_seen: HashSet<Vec<String>>,
    fills: Vec<Vec<Seg>>,
    fills_seen: HashSet<Vec<Seg>>,
    range_checks: Vec<RangeCheck>,
    insertions: Vec<(usize, String)>,
}

impl<'s> Analyzer<'s> {
    pub(super) fn run(source: &'s str, lexed: &Lexed<'s>) -> Result<Analysis, TemplateError> {
        let regions = executable_regions(lexed);
        let mut analyzer = Analyzer {
            source,
            ever_assigned: HashSet::new(),
            counters: HashSet::new(),
            loops: Vec::new(),
            assigned: HashSet::new(),
            captures: Vec::new(),
            referenced: Vec::new(),
            referenced_seen: HashSet::new(),
            fills: Vec::new(),
            fills_seen: HashSet::new(),
            range_checks: Vec::new(),
            insertions: Vec::new(),
        };
        for region in &regions {
            let (arguments, _) = region.arguments();
            let target = || match tokenize(arguments).first().map(|t| t.tok.clone()) {
                Some(Tok::Ident(name)) => Some(name),
                _ => None,
            };
            match region.tag_name() {
                Some("assign" | "capture") => analyzer.ever_assigned.extend(target()),
                Some("increment" | "decrement") => analyzer.counters.extend(target()),
                _ => {}
            }
        }
        for region in regions {
            analyzer.region(region)?;
        }
        Ok(Analysis {
            referenced: analyzer.referenced,
            fills: analyzer.fills,
            range_checks: analyzer.range_checks,
            insertions: analyzer.insertions,
        })
    }

    fn region(&mut self, region: &Region<'s>) -> Result<(), TemplateError> {
        let (arguments, offset) = region.arguments();
        let tokens = tokenize(arguments);
        let Some(name) = region.tag_name() else {
            self.scan(&tokens, 0, offset, false)?;
            self.insertions
                .push((region.expression_end(), format!(" | {SORTED}")));
            return Ok(());
        };
        match name {
            "include" | "render" => Err(TemplateError::at(
                self.source,
                region.name_offset(),
                format!("`{name}` is not supported: message templates cannot include other files"),
            )),
            "tablerow" => Err(TemplateError::at(
                self.source,
                region.name_offset(),
                "`tablerow` is not supported; use `for`",
            )),
            "for" => self.for_tag(region, &tokens, offset),
            "endfor" => {
                self.loops.pop();
                Ok(())
            }
            "assign" => {
                let target = match tokens.first().map(|t| &t.tok) {
                    Some(Tok::Ident(target)) => Some(*target),
                    _ => None,
                };
                // The value is read before the name is bound.
                self.scan(&tokens, 1, offset, false)?;
                if let Some(target) = target {
                    self.assigned.insert(target);
                    self.guard_size(region, target);
                }
                Ok(())
            }
            "capture" => {
                if let Some(Tok::Ident(target)) = tokens.first().map(|t| &t.tok) {
                    self.captures.push(target);
                }
                Ok(())
            }
            "endcapture" => {
                if let Some(target) = self.captures.pop() {
                    self.assigned.insert(target);
                    self.guard_size(region, target);
                }
                Ok(())
            }
            "increment" | "decrement" => Ok(()),
            "if" | "elsif" | "unless" | "else" => {
                self.scan(&tokens, 0, offset, true)?;
                self.insertions.push((
                    region.insertion_point(self.source),
                    format!("{{{{ {BODY} }}}}"),
                ));
                Ok(())
            }
            _ => self.scan(&tokens, 0, offset, true),
        }
    }

    /// `for VAR in COLLECTION [limit: n] [offset: n] [reversed]`
    fn for_tag(
        &mut self,
        region: &Region<'s>,
        tokens: &[Token<'s>],
        offset: usize,
    ) -> Result<(), TemplateError> {
        let var_name = match (
            tokens.first().map(|t| &t.tok),
            tokens.get(1).map(|t| &t.tok),
        ) {
            (Some(Tok::Ident(name)), Some(Tok::Ident("in"))) => Some(*name),
            _ => None,
        };
        let mut item_source = None;
        let mut rest = 0;
        if var_name.is_some() {
            let collection = 2;
            rest = match tokens.get(collection).map(|t| &t.tok) {
                Some(Tok::LParen) => self.range(region, tokens, collection, offset)?,
                Some(Tok::Ident(word)) if !is_literal_word(word) => {
                    let (var, next) = parse_var(tokens, collection, 0);
                    let origin = self.record(&var, offset)?;
                    if !var.dynamic {
                        item_source = match origin {
                            Origin::Global(path) | Origin::LoopItem(path) => Some(path),
                            Origin::Local => None,
                        };
                    }
                    next
                }
                _ => collection,
            };
        }
        self.scan(tokens, rest, offset, true)?;
        self.loops.push((var_name.unwrap_or(""), item_source));
        self.insertions.push((
            region.insertion_point(self.source),
            format!("{{{{ {TICK} }}}}"),
        ));
        Ok(())
    }

    /// `(start..stop)` at `tokens[open]`; returns the index after `)`.
    fn range(
        &mut self,
        region: &Region<'s>,
        tokens: &[Token<'s>],
        open: usize,
        offset: usize,
    ) -> Result<usize, TemplateError> {
        let (start, next) = self.bound(tokens, open + 1, offset)?;
        if tokens.get(next).map(|t| &t.tok) != Some(&Tok::DotDot) {
            return Ok(next);
        }
        let (stop, next) = self.bound(tokens, next + 1, offset)?;
        let next = match tokens.get(next).map(|t| &t.tok) {
            Some(Tok::RParen) => next + 1,
            _ => next,
        };
        match (&start, &stop) {
            (Bound::Literal(low), Bound::Literal(high)) => {
                check_range_size(*low, *high, self.source, region.inner_start)?;
            }
            (Bound::Invalid, _) | (_, Bound::Invalid) => {}
            _ => self.range_checks.push(RangeCheck {
                start,
                stop,
                offset: region.inner_start,
            }),
        }
        Ok(next)
    }

    fn bound(
        &mut self,
        tokens: &[Token<'s>],
        at: usize,
        offset: usize,
    ) -> Result<(Bound, usize), TemplateError> {
        let Some(token) = tokens.get(at) else {
            return Ok((Bound::Invalid, at));
        };
        match &token.tok {
            Tok::Int(text) | Tok::Str(text) => {
                let bound = text
                    .trim()
                    .parse::<i64>()
                    .map_or(Bound::Invalid, Bound::Literal);
                Ok((bound, at + 1))
            }
            Tok::Ident(word) if !is_literal_word(word) => {
                let (var, next) = parse_var(tokens, at, 0);
                let origin = self.record(&var, offset)?;
                let path = match origin {
                    Origin::Global(path) | Origin::LoopItem(path)
                        if !var.dynamic && !self.may_be_reassigned(&path) =>
                    {
                        path
                    }
                    _ => {
                        return Err(TemplateError::at(
                            self.source,
                            offset + token.offset,
                            "range bounds must be whole numbers or event data, not values the \
                             template computes",
                        ))
                    }
                };
                Ok((Bound::Path(path), next))
            }
            _ => Ok((Bound::Invalid, at + 1)),
        }
    }

    fn may_be_reassigned(&self, path: &[Seg]) -> bool {
        match path.first() {
            Some(Seg::Key(root)) => self.ever_assigned.contains(root.as_str()),
            _ => true,
        }
    }

    /// Records the variables in `tokens[from..]`, skipping filter names, keyword-argument
    /// names, literals and (in tags) operator words.
    fn scan(
        &mut self,
        tokens: &[Token<'s>],
        from: usize,
        offset: usize,
        in_tag: bool,
    ) -> Result<(), TemplateError> {
        let mut i = from;
        while let Some(token) = tokens.get(i) {
            match &token.tok {
                Tok::Pipe => {
                    i += 1;
                    if matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::Ident(_))) {
                        i += 1;
                    }
                }
                Tok::Ident(word) => {
                    let named_argument = tokens.get(i + 1).map(|t| &t.tok) == Some(&Tok::Colon);
                    if named_argument || is_literal_word(word) || (in_tag && is_tag_keyword(word)) {
                        i += 1;
                    } else {
                        let (var, next) = parse_var(tokens, i, 0);
                        self.record(&var, offset)?;
                        i = next;
                    }
                }
                _ => i += 1,
            }
        }
        Ok(())
    }

    /// Notes a variable the template reads (and the variables in its indexes).
    fn record(&mut self, var: &VarRef<'s>, offset: usize) -> Result<Origin, TemplateError> {
        if var.segs.len() > MAX_PATH_SEGMENTS {
            return Err(TemplateError::at(
                self.source,
                offset + var.offset,
                format!("variable path has more than {MAX_PATH_SEGMENTS} parts"),
            ));
        }
        let origin = self.origin(var);
        match &origin {
            Origin::Global(path) => {
                let shown: Vec<String> = path.iter().filter_map(seg_key).collect();
                if self.referenced_seen.insert(shown.clone()) {
                    self.referenced.push(shown);
                }
                self.add_fill(path.clone());
            }
            Origin::LoopItem(path) => self.add_fill(path.clone()),
            Origin::Local => {}
        }
        for nested in &var.nested {
            self.record(nested, offset)?;
        }
        Ok(origin)
    }

    fn add_fill(&mut self, path: Vec<Seg>) {
        if self.fills_seen.insert(path.clone()) {
            self.fills.push(path);
        }
    }

    fn origin(&self, var: &VarRef<'s>) -> Origin {
        if var.root == "forloop" || var.root.is_empty() {
            return Origin::Local;
        }
        if let Some((_, source)) = self.loops.iter().rev().find(|(name, _)| *name == var.root) {
            return match source {
                Some(base) => {
                    let mut path = base.clone();
                    path.push(Seg::Each);
                    path.extend(var.segs.iter().skip(1).cloned());
                    Origin::LoopItem(path)
                }
                None => Origin::Local,
            };
        }
        if self.assigned.contains(var.root) || self.counters.contains(var.root) {
            return Origin::Local;
        }
        Origin::Global(var.segs.clone())
    }

    /// Fails the render when `name` has grown past the size cap.
    fn guard_size(&mut self, region: &Region<'s>, name: &str) {
        self.insertions.push((
            region.insertion_point(self.source),
            format!(
                "{{% assign {SIZE} = {name} | size %}}\
                 {{% if {SIZE} > {MAX_OUTPUT_BYTES} %}}{{{{ {TOO_LARGE} }}}}{{% endif %}}"
            ),
        ));
    }
}

/// The source with the probes inserted (offsets ascending).
pub(super) fn instrument(source: &str, insertions: &[(usize, String)]) -> String {
    let extra: usize = insertions.iter().map(|(_, text)| text.len()).sum();
    let mut out = String::with_capacity(source.len() + extra);
    let mut copied = 0;
    for (offset, text) in insertions {
        let offset = (*offset).clamp(copied, source.len());
        out.push_str(&source[copied..offset]);
        out.push_str(text);
        copied = offset;
    }
    out.push_str(&source[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use crate::template::test_support::{compile_err, p, paths, plain_liquid, render};
    use serde_json::json;

    #[test]
    fn assign_capture_and_counters_work() {
        let source = "{% assign name = traits.first_name | upcase %}{% capture greeting %}Hi {{ name }}{% endcapture %}{{ greeting }}!";
        assert_eq!(
            render(source, json!({"traits": {"first_name": "ann"}})),
            "Hi ANN!"
        );
        assert_eq!(render(source, json!({})), "Hi !");
        assert_eq!(paths(source), vec![p(&["traits", "first_name"])]);

        let counters = "{% increment n %}{% increment n %}{% decrement m %}";
        assert_eq!(
            render(counters, json!({})),
            plain_liquid(counters, json!({}))
        );
        assert!(paths(counters).is_empty());
        assert_eq!(render("{% assign x = nil %}[{{ x }}]", json!({})), "[]");
    }

    #[test]
    fn guards_do_not_change_whitespace_handling() {
        let data = json!({"data": {"items": [1, 2]}, "other": {"items": []}});
        for source in [
            "{%- for i in data.items -%}\n  [{{ i }}]\n{%- endfor -%}\nend",
            "{% for i in data.items -%}\n  [{{ i }}]\n  {%- endfor %}\nend",
            "{% for i in data.items -%}\t{{ i }}{% endfor %}",
            "{% for i in data.items -%}\r\n {{ i }} {%- endfor %}",
            "{%for i in data.items%}{{i}}{%endfor%}",
            "{% for i in other.items -%}  x {% else -%}   none  {%- endfor %}",
            "{% for i in data.items %}\n{% if forloop.first %}first {% endif %}{{ i }}{% endfor %}",
            "a\n{%- assign x = 1 -%}\n   b {{ x }}\n{% capture y -%}  c  {%- endcapture -%}  \n d{{ y }}",
            "{% assign x = 1 %}  {%- assign y = 2 -%}  {{ x }}{{ y }}",
            "{% capture c %}{% for i in data.items %}{{ i }}{% endfor %}{% endcapture %}[{{ c }}]",
            "{%- if data.items -%}\n  a  {%- elsif other -%} b {%- else -%}\n c {% endif -%}  d",
            "{% unless other.items.size > 0 -%}  u  {%- else %} v {% endunless %} {{- other -}} .",
            "{% if other.items.size > 0 %}{% elsif data.items %}\r\n {{- data.items -}} \n{% endif %}",
            "{% case data.items.size %}{% when 2 -%} two {%- else %} many {% endcase %}",
            "{{- data.items }} {{ data.items -}}  {{ data.items | join: ', ' }}{{data.items}}",
        ] {
            assert_eq!(
                render(source, data.clone()),
                plain_liquid(source, data.clone()),
                "{source:?}"
            );
        }
    }

    #[test]
    fn size_guard_accepts_odd_sizes() {
        let data = json!({"traits": {"size": "big", "n": 5}});
        assert_eq!(
            render("{% assign t = traits %}{{ t.size }}|{% assign n = traits.n %}{{ n }}|{% assign m = traits.missing %}{{ m }}|{% assign b = true %}{{ b }}", data),
            "big|5||true"
        );
    }

    #[test]
    fn referenced_paths_are_deduplicated_in_order_of_appearance() {
        let source = "Hi {{ traits.first_name }}, step {{ properties.step }}{% for i in data.items %}{{ i.name }}{% endfor %} {{ traits.first_name }}";
        assert_eq!(
            paths(source),
            vec![
                p(&["traits", "first_name"]),
                p(&["properties", "step"]),
                p(&["data", "items"])
            ]
        );
    }

    #[test]
    fn referenced_paths_include_filter_arguments_but_not_filter_names() {
        assert_eq!(
            paths("{{ traits.name | default: properties.fallback | append: context.x | upcase }}"),
            vec![
                p(&["traits", "name"]),
                p(&["properties", "fallback"]),
                p(&["context", "x"])
            ]
        );
        assert_eq!(
            paths("{{ \"}}\" | append: traits.x }}{{ 'a' | replace: \"a\", traits.y }}"),
            vec![p(&["traits", "x"]), p(&["traits", "y"])]
        );
    }

    #[test]
    fn referenced_paths_include_tag_expressions() {
        let source = concat!(
            "{% if traits.plan == \"pro\" and properties.count > 3 or traits.tags contains 'x' %}",
            "{% elsif context.a != empty %}{% else %}{% endif %}",
            "{% unless traits.off %}{% endunless %}",
            "{% case traits.tier %}{% when properties.gold, \"silver\" or 'b' %}{% endcase %}",
            "{% cycle traits.c1, \"b\" %}",
            "{% for i in data.items limit: properties.n offset: 2 reversed %}{% endfor %}",
            "{% for n in (1..properties.count) %}{% endfor %}",
            "{% for n in (properties.from..5) %}{% endfor %}",
        );
        assert_eq!(
            paths(source),
            vec![
                p(&["traits", "plan"]),
                p(&["properties", "count"]),
                p(&["traits", "tags"]),
                p(&["context", "a"]),
                p(&["traits", "off"]),
                p(&["traits", "tier"]),
                p(&["properties", "gold"]),
                p(&["traits", "c1"]),
                p(&["data", "items"]),
                p(&["properties", "n"]),
                p(&["properties", "from"]),
            ]
        );
    }

    #[test]
    fn referenced_paths_skip_template_variables() {
        assert_eq!(
            paths("{% for item in data.items %}{{ item.name }}{{ forloop.index }}{% endfor %}{{ item.name }}"),
            vec![p(&["data", "items"]), p(&["item", "name"])]
        );
        // Read before it is assigned: a global at that point.
        assert_eq!(
            paths("{{ x }}{% assign x = 1 %}{{ x }}{% capture y %}{{ y }}{% endcapture %}{{ y }}"),
            vec![p(&["x"]), p(&["y"])]
        );
        assert!(paths("{{ true }}{{ nil }}{{ \"traits.x\" }}{{ 1 | plus: 2.5 }}").is_empty());
    }

    #[test]
    fn referenced_paths_keep_literal_indexes_and_stop_at_computed_ones() {
        assert_eq!(
            paths("{{ data[\"first name\"] }}{{ data.items[0].name }}{{ traits.first-name }}"),
            vec![
                p(&["data", "first name"]),
                p(&["data", "items", "0", "name"]),
                p(&["traits", "first-name"])
            ]
        );
        assert_eq!(
            paths("{{ data.items[traits.idx].name }}"),
            vec![p(&["data", "items"]), p(&["traits", "idx"])]
        );
    }

    #[test]
    fn unsupported_tags_are_refused_with_positions() {
        for (source, column) in [
            ("ab {% include 'x' %}", 7),
            ("{% render 'x' %}", 4),
            (
                "{% tablerow i in (1..3) cols: 0 %}{{ i }}{% endtablerow %}",
                4,
            ),
        ] {
            let e = compile_err(source);
            assert_eq!((e.line, e.column), (1, column), "{e}");
        }
        // Inside a comment they never run.
        assert_eq!(
            render(
                "{% comment %}{% include 'x' %}{% endcomment %}ok",
                json!({})
            ),
            "ok"
        );
    }

    #[test]
    fn ranges_over_computed_values_are_refused() {
        compile_err("{% assign n = 1000000000 %}{% for i in (1..n) %}{% endfor %}");
        compile_err("{% for i in (1..forloop.index) %}{% endfor %}");
        compile_err("{% for i in (1..3) %}{% for j in (1..i) %}{% endfor %}{% endfor %}");
        // A global the template may overwrite later is not trusted either.
        compile_err("{% for i in (1..3) %}{% for j in (1..p.n) %}{% endfor %}{% assign p = x %}{% endfor %}");
    }
}
