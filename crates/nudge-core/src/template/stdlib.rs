//! Liquid's standard library as our templates get it: every filter, and the tags that read
//! values (`for`, `if`, `unless`, `cycle`), see what they read through [`SortedView`]s, and the
//! filter placed at the end of every `{{ }}` renders its value the same way, so that no object
//! reaches the output, a loop or a comparison in the order of Liquid's hash maps.
//!
//! `sort` and `sort_natural` are our own (`sort_filters.rs`): Liquid's compare copies.
//!
//! The other tags read no value whose order shows (`assign` and `capture` store, `case`
//! compares with an order-blind equality, `increment` counts) or are refused when a template
//! compiles (`include`, `render`, `tablerow`).

use std::fmt;
use std::io::Write;

use liquid::model::Value;
use liquid::{ParserBuilder, ValueView};
use liquid_core::parser::{
    BlockReflection, FilterArguments, FilterReflection, ParameterReflection, TagBlock,
    TagReflection,
};
use liquid_core::runtime::Renderable;
use liquid_core::{Error, Filter, Language, ParseBlock, ParseFilter, ParseTag, Result};
use liquid_core::{Runtime, TagTokenIter};
use liquid_lib::stdlib;

use super::shelf::Shelf;
use super::sort_filters::{Sort, SortNatural};
use super::sorted::{has_children, SortedView};
use super::sorted_lookups::SortedLookups;
use super::{MAX_OUTPUT_BYTES, SORTED};

/// The standard library (as `ParserBuilder::with_stdlib` has it), sorted where it reads.
pub(super) fn parser_builder() -> ParserBuilder {
    let filters: [Box<dyn ParseFilter>; 48] = [
        Box::new(stdlib::Abs),
        Box::new(stdlib::Append),
        Box::new(stdlib::AtLeast),
        Box::new(stdlib::AtMost),
        Box::new(stdlib::Capitalize),
        Box::new(stdlib::Ceil),
        Box::new(stdlib::Compact),
        Box::new(stdlib::Concat),
        Box::new(stdlib::Date),
        Box::new(stdlib::Default),
        Box::new(stdlib::DividedBy),
        Box::new(stdlib::Downcase),
        Box::new(stdlib::Escape),
        Box::new(stdlib::EscapeOnce),
        Box::new(stdlib::First),
        Box::new(stdlib::Floor),
        Box::new(stdlib::Join),
        Box::new(stdlib::Last),
        Box::new(stdlib::Lstrip),
        Box::new(stdlib::Map),
        Box::new(stdlib::Minus),
        Box::new(stdlib::Modulo),
        Box::new(stdlib::NewlineToBr),
        Box::new(stdlib::Plus),
        Box::new(stdlib::Prepend),
        Box::new(stdlib::Remove),
        Box::new(stdlib::RemoveFirst),
        Box::new(stdlib::Replace),
        Box::new(stdlib::ReplaceFirst),
        Box::new(stdlib::Reverse),
        Box::new(stdlib::Round),
        Box::new(stdlib::Rstrip),
        Box::new(stdlib::Size),
        Box::new(stdlib::Slice),
        Box::new(Sort),
        Box::new(SortNatural),
        Box::new(stdlib::Split),
        Box::new(stdlib::Strip),
        Box::new(stdlib::StripHtml),
        Box::new(stdlib::StripNewlines),
        Box::new(stdlib::Times),
        Box::new(stdlib::Truncate),
        Box::new(stdlib::TruncateWords),
        Box::new(stdlib::Uniq),
        Box::new(stdlib::Upcase),
        Box::new(stdlib::UrlDecode),
        Box::new(stdlib::UrlEncode),
        Box::new(stdlib::Where),
    ];
    let builder = ParserBuilder::new()
        .tag(stdlib::AssignTag)
        .tag(stdlib::BreakTag)
        .tag(stdlib::ContinueTag)
        .tag(SortedTag(Box::new(stdlib::CycleTag)))
        .tag(stdlib::IncludeTag)
        .tag(stdlib::IncrementTag)
        .tag(stdlib::DecrementTag)
        .tag(stdlib::RenderTag)
        .block(stdlib::RawBlock)
        .block(SortedBlock(Box::new(stdlib::IfBlock)))
        .block(SortedBlock(Box::new(stdlib::UnlessBlock)))
        .block(stdlib::IfChangedBlock)
        .block(SortedBlock(Box::new(stdlib::ForBlock)))
        .block(stdlib::TableRowBlock)
        .block(stdlib::CommentBlock)
        .block(stdlib::CaptureBlock)
        .block(stdlib::CaseBlock)
        .filter(SortedOutput);
    filters.into_iter().fold(builder, |builder, filter| {
        builder.filter(SortedFilter(filter))
    })
}

/// A standard filter whose input and arguments are sorted views.
#[derive(Clone)]
struct SortedFilter(Box<dyn ParseFilter>);

impl ParseFilter for SortedFilter {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(SortedCall(self.0.parse(arguments)?)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.0.reflection()
    }
}

#[derive(Debug)]
struct SortedCall(Box<dyn Filter>);

/// Liquid names the failing filter in its errors by this text.
impl fmt::Display for SortedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Filter for SortedCall {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let input = SortedView::new(input);
        let owned = Shelf::default();
        let views = Shelf::default();
        let runtime = SortedLookups::new(runtime, &owned, &views);
        self.0.evaluate(&input, &runtime)
    }
}

/// A standard tag (`cycle`) that reads through sorted lookups.
#[derive(Clone)]
struct SortedTag(Box<dyn ParseTag>);

impl ParseTag for SortedTag {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        Ok(Box::new(SortedReads(self.0.parse(arguments, options)?)))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self.0.reflection()
    }
}

/// A standard block (`for`, `if`, `unless`) that reads through sorted lookups.
#[derive(Clone)]
struct SortedBlock(Box<dyn ParseBlock>);

impl ParseBlock for SortedBlock {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        block: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        Ok(Box::new(SortedReads(
            self.0.parse(arguments, block, options)?,
        )))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self.0.reflection()
    }
}

#[derive(Debug)]
struct SortedReads(Box<dyn Renderable>);

impl Renderable for SortedReads {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let owned = Shelf::default();
        let views = Shelf::default();
        let runtime = SortedLookups::new(runtime, &owned, &views);
        self.0.render_to(writer, &runtime)
    }
}

/// The filter ending every `{{ }}` (placed by the analysis): the value as text, its objects in
/// key order. Liquid writes an output's value itself; this is the last of ours it goes through.
#[derive(Clone, Copy)]
struct SortedOutput;

impl FilterReflection for SortedOutput {
    fn name(&self) -> &str {
        SORTED
    }

    fn description(&self) -> &str {
        "Renders the value with its objects' keys in order."
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for SortedOutput {
    fn parse(&self, mut arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(Error::with_msg("Invalid argument").context("cause", "takes none"));
        }
        Ok(Box::new(SortedOutput))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

impl fmt::Debug for SortedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SORTED)
    }
}

impl fmt::Display for SortedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SORTED)
    }
}

impl Filter for SortedOutput {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        if !has_children(input) {
            return Ok(input.to_value());
        }
        let mut text = CappedText::default();
        // Past the cap the text is cut short; it still overflows the output's own cap, which
        // reports the error, without the whole value being written out in memory first.
        let _ = fmt::write(
            &mut text,
            format_args!("{}", SortedView::new(input).render()),
        );
        Ok(Value::scalar(text.0))
    }
}

/// Text that stops growing once it is longer than the largest output.
#[derive(Default)]
struct CappedText(String);

impl fmt::Write for CappedText {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        if self.0.len() > MAX_OUTPUT_BYTES {
            return Err(fmt::Error);
        }
        self.0.push_str(piece);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::test_support::{plain_liquid, render_every_way};
    use liquid::reflection::ParserReflection;
    use serde_json::json;

    /// Objects of several keys, nested, and in arrays.
    fn data() -> serde_json::Value {
        json!({
            "traits": {
                "plan": "team", "email": "a@x", "seats": 5, "first_name": "Ann",
                "address": {"zip": "1000", "city": "Ghent", "street": "Kouter"}
            },
            "properties": {"items": [
                {"name": "Tea", "price": 3.5, "tags": ["hot", "green"], "meta": {"b": 2, "a": 1}},
                {"name": "cake", "price": 4, "tags": [], "meta": {"c": 0, "a": 1}}
            ]}
        })
    }

    fn renders(source: &str, expected: &str) {
        assert_eq!(
            render_every_way(source, data()).as_deref(),
            Ok(expected),
            "{source:?}"
        );
    }

    fn fails(source: &str, expected: &str) {
        let error = render_every_way(source, data()).expect_err(source);
        assert_eq!(error.message, expected, "{source:?}");
    }

    const ADDRESS: &str = "cityGhentstreetKouterzip1000";

    #[test]
    fn objects_render_whole_in_key_order_every_time() {
        renders(
            "{{ traits }}",
            &format!("address{ADDRESS}emaila@xfirst_nameAnnplanteamseats5"),
        );
        renders(
            "{{ properties }}",
            "itemsmetaa1b2nameTeaprice3.5tagshotgreenmetaa1c0namecakeprice4tags",
        );
        renders("{% assign t = traits.address %}{{ t }}", ADDRESS);
        renders("{% assign t = traits %}{{ t.address }}", ADDRESS);
        renders(
            "{% capture c %}{{ traits.address }}{% endcapture %}{{ c }}",
            ADDRESS,
        );
        renders(
            "{% for i in (1..3) %}{% ifchanged %}{{ traits.address }}{% endifchanged %}{% endfor %}",
            ADDRESS,
        );
        renders(
            "{% for i in (1..2) %}{{ forloop }};{% endfor %}",
            "firsttrueindex1index00lastfalselength2parentlooprindex2rindex01;\
             firstfalseindex2index01lasttruelength2parentlooprindex1rindex00;",
        );
    }

    #[test]
    fn loops_over_objects_walk_them_in_key_order_every_time() {
        renders(
            "{% for pair in traits %}{{ pair[0] }}={{ pair[1] }};{% endfor %}",
            &format!("address={ADDRESS};email=a@x;first_name=Ann;plan=team;seats=5;"),
        );
        renders(
            "{% assign t = traits.address %}{% for p in t reversed %}{{ p | first }}{% endfor %}",
            "zipstreetcity",
        );
        renders(
            "{% for item in properties.items %}{% for m in item.meta %}{{ m[0] }}{{ m[1] }},\
             {% endfor %};{% endfor %}",
            "a1,b2,;a1,c0,;",
        );
        renders(
            "{% for pair in traits %}{% if pair[0] == 'address' %}{% for inner in pair[1] %}\
             {{ inner[0] }}{% endfor %}{% endif %}{% endfor %}",
            "citystreetzip",
        );
    }

    #[test]
    fn filters_see_objects_in_key_order_every_time() {
        renders(
            "{{ properties.items | first }}",
            "metaa1b2nameTeaprice3.5tagshotgreen",
        );
        renders(
            "{{ properties.items | reverse | first | upcase }}",
            "METAA1C0NAMECAKEPRICE4TAGS",
        );
        renders("{{ traits.address | default: 1 }}", ADDRESS);
        renders(
            "{{ 'at ' | append: traits.address }}",
            &format!("at {ADDRESS}"),
        );
        renders(
            "{{ properties.items | map: 'meta' | join: '/' }}",
            "a1b2/a1c0",
        );
        renders(
            "{{ properties.items | map: 'meta' | reverse | sort | join: '/' }}",
            "a1b2/a1c0",
        );
        renders(
            "{{ properties.items | map: 'meta' | reverse | sort_natural | join: '/' }}",
            "a1b2/a1c0",
        );
        renders(
            "{{ properties.items | sort: 'meta' | map: 'name' | join: '/' }}",
            "Tea/cake",
        );
    }

    #[test]
    fn tags_read_objects_in_key_order_every_time() {
        renders(
            &format!("{{% if '{ADDRESS}' contains traits.address %}}yes{{% endif %}}"),
            "yes",
        );
        renders(
            "{% assign metas = properties.items | map: 'meta' %}{% assign a = metas | first %}\
             {% assign b = metas | last %}{% if a < b %}less{% elsif a > b %}more{% endif %}\
             {% unless b < a %}, not more{% endunless %}",
            "less, not more",
        );
        renders(
            "{% cycle traits.address, 'x' %}{% cycle traits.address, 'x' %}",
            &format!("{ADDRESS}x"),
        );
        renders(
            "{% case traits.address %}{% when traits.address %}same{% endcase %}",
            "same",
        );
    }

    #[test]
    fn render_errors_quoting_objects_read_the_same_every_time() {
        fails(
            "{% assign t = traits.address %}{{ t | plus: 1 }}",
            "Invalid input (cause=Number expected; filter=plus : 1)",
        );
        fails(
            "{{ properties.items | first | times: 2 }}",
            "Invalid input (cause=Number expected; filter=times : 2)",
        );
        fails(
            "{{ properties.items[traits.address] }}",
            "Expected scalar, found an object",
        );
        fails(
            "{% assign t = traits.address %}{{ t.country.name }}",
            "Unknown index (variable=t; requested index=country)",
        );
        fails(
            "{% case traits.address %}{% else %}{{ 1 | divided_by: 0 }}{% endcase %}",
            "Invalid argument (argument=operand; cause=Can't divide by zero; \
             filter=divided_by : 0; input=1)",
        );
        fails(
            "{% for p in traits %}{% for q in p[1] %}{% endfor %}{% endfor %}",
            "Expected array, found `string` (in {% for p in traits  %}; index=2)",
        );
    }

    #[test]
    fn values_without_objects_render_as_liquid_renders_them() {
        let data = json!({"p": {"n": 3, "s": "a<b", "list": [1, "two", 3.5, null, true]}});
        for source in [
            "{{ p.n }}|{{ p.s }}|{{ p.list }}|{{ empty }}|{{ nil }}",
            "{{ p.list | join: ',' }}|{{ p.list | first }}|{{ p.list | size }}",
            "{{ p.list | compact | sort_natural | join: ',' }}",
            "{% assign l = 'b,A,c,a' | split: ',' %}{{ l | sort | join }}{{ l | sort_natural | join }}",
            "{% for x in p.list %}{% cycle 'a', 'b' %}{{ x }}{% endfor %}",
        ] {
            assert_eq!(
                render_every_way(source, data.clone()).as_deref(),
                Ok(plain_liquid(source, data.clone()).as_str()),
                "{source:?}"
            );
        }
    }

    fn names<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut names: Vec<String> = items.map(str::to_owned).collect();
        names.sort();
        names
    }

    #[test]
    fn every_standard_tag_and_filter_is_there() {
        let ours = parser_builder();
        let liquid = ParserBuilder::with_stdlib();
        assert_eq!(
            names(ours.tags().map(|t| t.tag())),
            names(liquid.tags().map(|t| t.tag()))
        );
        assert_eq!(
            names(ours.blocks().map(|b| b.start_tag())),
            names(liquid.blocks().map(|b| b.start_tag()))
        );
        let mut expected = names(liquid.filters().map(|f| f.name()));
        expected.push(SORTED.to_owned());
        expected.sort();
        assert_eq!(names(ours.filters().map(|f| f.name())), expected);
    }
}
