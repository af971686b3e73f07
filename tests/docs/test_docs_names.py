"""The docs name only what the code defines: every metric, configuration key, CLI
subcommand and DLQ code the docs mention exists in host/src (plugin codes: plugins/),
every ClickHouse object they name is created by sql/migrations/,
the reference pages list all of them, every page or anchor one page links to exists,
every repository path the pages, the compose file and the code's comments name
exists, and every figure on the benchmark page is in the result file it cites
(`unsourced_figures` gives the rule).

Names are taken from the code with regexes, so a rename in the code fails here until
the docs follow. Text in "> **Upcoming" blockquotes describes what is being built and
is not checked against today's code. Needs no build and no stack."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "host" / "src"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def rust_sources() -> str:
    return "\n".join(p.read_text() for p in sorted(SRC.rglob("*.rs")))


def without_upcoming(text: str) -> str:
    """Drop blockquotes that start with `> **Upcoming`."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("> **Upcoming"):
            skipping = True
        elif skipping and not line.startswith(">"):
            skipping = False
        out.append("" if skipping else line)
    return "\n".join(out)


def docs_text() -> dict[Path, str]:
    return {p: without_upcoming(p.read_text()) for p in PAGES}


def code_spans(text: str) -> list[str]:
    """Inline code and fenced blocks: where names are quoted."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    rest = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
    return blocks + re.findall(r"`([^`\n]+)`", rest)


# --- names from the code ---------------------------------------------------------

def code_metrics() -> set[str]:
    """The metrics of the catalogue (host/src/telemetry.rs), where every metric is defined."""
    catalogue = (SRC / "telemetry.rs").read_text()
    return set(re.findall(r'(?:counter|gauge|histogram)\(\s*"(streamhost_[a-z_]+)"', catalogue))


def struct_fields(src: str, name: str) -> list[tuple[str, str]]:
    body = re.search(r"pub struct " + name + r" \{(.*?)\n\}", src, re.S).group(1)
    return re.findall(r"pub (\w+): (\w+)", body)


def code_config_keys() -> set[str]:
    src = (SRC / "config.rs").read_text()
    return {f"{section}.{key}" for section, ty in struct_fields(src, "Config")
            for key, _ in struct_fields(src, ty)}


def enum_variants(src: str, name: str) -> list[str]:
    body = re.search(r"enum " + name + r" \{(.*?)\n\}", src, re.S).group(1)
    return [v.lower() for v in re.findall(r"^    ([A-Z]\w*)\b", body, re.M)]


def code_subcommands() -> set[str]:
    src = (SRC / "main.rs").read_text()
    out = set()
    for top in enum_variants(src, "Command"):
        out.add(top)
        sub = {"plugin": "PluginCommand", "dlq": "DlqCommand", "topics": "TopicsCommand"}.get(top)
        if sub:
            out |= {f"{top} {v}" for v in enum_variants(src, sub)}
    return out


def code_replay_flags() -> set[str]:
    src = (SRC / "main.rs").read_text()
    body = re.search(r"struct ReplayArgs \{(.*?)\n\}", src, re.S).group(1)
    flags = set()
    for attrs, field in re.findall(r"((?:\s*#\[[^\n]*\]\n)+)\s*(\w+):", body):
        if "long" not in attrs:
            continue
        named = re.search(r'long = "([\w-]+)"', attrs)
        flags.add("--" + (named.group(1) if named else field.replace("_", "-")))
        if "short" in attrs:
            flags.add("-" + field[0])
    return flags


def code_dlq_codes() -> set[str]:
    """The host's codes (the `host_codes!` table in records/dlq.rs) and the codes the
    product plugins, the examples and the SDK give."""
    dlq = (SRC / "records" / "dlq.rs").read_text()
    body = re.search(r"^host_codes! \{(.*?)\n\}", dlq, re.S | re.M).group(1)
    codes = set(re.findall(r'= "([a-z_]+)",', body))
    rules = [p for p in (ROOT / "plugins").rglob("src/*.rs")
             if not {"zoo", "sdk", "template"} & set(p.relative_to(ROOT / "plugins").parts)]
    plugins = "\n".join(p.read_text() for p in rules)
    codes |= set(re.findall(r'"(invalid_[a-z_]+)"', plugins))
    codes |= set(re.findall(r'Verdict::reject\(\s*"([a-z_]+)"', plugins))
    # The SDK's own: a batch before `configure`.
    sdk = "\n".join(p.read_text() for p in (ROOT / "plugins" / "sdk").rglob("*.rs"))
    codes |= set(re.findall(r'Verdict::reject\("(plugin_[a-z_]+)"', sdk))
    return codes


# --- the tests -------------------------------------------------------------------

def test_the_extraction_finds_the_code():
    assert len(code_metrics()) >= 20
    assert {"kafka.brokers", "windows.grace_secs", "admin.listen"} <= code_config_keys()
    assert {"run", "plugin check", "plugin test", "dlq replay"} <= code_subcommands()
    assert {"--code", "--dry-run", "--since"} <= code_replay_flags()
    assert {"malformed_json", "plugin_failed", "late_event", "output_too_large", "invalid_country"} <= code_dlq_codes()


NOT_METRICS = {"streamhost_sdk", "streamhost_kit"}  # the guest SDK crate, the Python kit


def test_metrics_named_in_the_docs_exist_and_the_reference_lists_all():
    known = code_metrics()
    for page, text in docs_text().items():
        for name in set(re.findall(r"\bstreamhost_[a-z_]+", text)) - NOT_METRICS:
            assert name in known, f"{page.relative_to(ROOT)}: metric {name} is not defined in host/src"
    reference = (ROOT / "docs" / "reference" / "metrics.md").read_text()
    missing = sorted(m for m in known if f"`{m}`" not in reference)
    assert not missing, f"docs/reference/metrics.md lacks {missing}"


NOT_KEYS = {"plugins.d"}  # the default plugin directory, a path


def test_config_keys_named_in_the_docs_exist_and_the_reference_lists_all():
    known = code_config_keys()
    key = re.compile(r"(?<![\w/.-])((?:kafka|pipeline|plugins|windows|admin)\.(?!rs\b)[a-z_]+)(?![\w/.-])")
    env = re.compile(r"\bSTREAMHOST_([A-Z]+)__([A-Z_]+)")
    for page, text in docs_text().items():
        for span in code_spans(text):
            for name in key.findall(span):
                if name not in NOT_KEYS:
                    assert name in known, f"{page.relative_to(ROOT)}: config key {name} is not in config.rs"
        for section, name in env.findall(text):
            if (section, name) == ("SECTION", "KEY"):
                continue  # the pattern itself
            assert f"{section.lower()}.{name.lower()}" in known, \
                f"{page.relative_to(ROOT)}: STREAMHOST_{section}__{name} is not a config key"
    reference = (ROOT / "docs" / "reference" / "config.md").read_text()
    missing = sorted(k for k in known if f"`{k}`" not in reference)
    assert not missing, f"docs/reference/config.md lacks {missing}"


def test_cli_subcommands_and_replay_flags_named_in_the_docs_exist():
    known = code_subcommands()
    flags = code_replay_flags() | {"--help"}
    command = re.compile(r"\bstreamhost ([a-z]+)(?: ([a-z]+))?")
    for page, text in docs_text().items():
        for span in code_spans(text):
            for line in span.splitlines():
                for top, sub in command.findall(line):
                    if top in ("plugin", "dlq"):
                        assert f"{top} {sub}" in known, f"{page.relative_to(ROOT)}: `streamhost {top} {sub}` is not a subcommand"
                    else:
                        assert top in known, f"{page.relative_to(ROOT)}: `streamhost {top}` is not a subcommand"
                if "dlq replay" in line:
                    for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.split("dlq replay", 1)[1]):
                        assert flag in flags, f"{page.relative_to(ROOT)}: `dlq replay {flag}` is not an option"
    reference = (ROOT / "docs" / "reference" / "cli.md").read_text()
    for flag in code_replay_flags() - {"-c"}:
        assert f"`{flag}" in reference, f"docs/reference/cli.md lacks {flag}"


def test_dlq_codes_in_the_docs_exist_and_the_reference_lists_all():
    known = code_dlq_codes()
    reference = (ROOT / "docs" / "reference" / "dlq.md").read_text()
    table = set(re.findall(r"^\| `([a-z_]+)` \|", reference.split("## Codes", 1)[1].split("\n## ", 1)[0], re.M))
    assert table, "no code table in docs/reference/dlq.md"
    assert table <= known, f"docs/reference/dlq.md lists codes the code does not define: {sorted(table - known)}"
    assert known <= table, f"docs/reference/dlq.md lacks codes: {sorted(known - table)}"
    for page, text in docs_text().items():
        quoted = set(re.findall(r"--code ([a-z_]+)", text)) | set(re.findall(r'"code":"([a-z_]+)"', text))
        for code in quoted:
            assert code in known, f"{page.relative_to(ROOT)}: DLQ code {code} is not defined"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_linked_page_and_anchor_exists():
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                assert anchor in anchors, f"{page.relative_to(ROOT)}: no heading #{anchor} in {path or page.name}"


# --- repository paths --------------------------------------------------------------

# Where the docs name files that builds and runs make, not the repository.
GENERATED = ("plugins/dist", "plugins.d", "target/", "bench/results/", ".state/", "~/", "/")
PATH_LIKE = re.compile(r"^(?:\./)?[\w.\-]+(?:/[\w.\-]+)+/?$|^[a-z][\w\-]*\.(?:rs|py|md|toml|sql|wit|yml|yaml|json|jsonl|png)$")
# The brief's generator comes with the brief, outside this repository.
BRIEF = {"data_generator.py"}
# Where a path the docs name may start: the repository, the host's modules (the design
# map names `stages/runtime.rs`), the plugins' folders, the pages themselves.
BASES = [ROOT, SRC, ROOT / "host", ROOT / "plugins", ROOT / "docs"]


def first_segments() -> set[str]:
    return {p.name for base in BASES for p in base.iterdir()}


def named_paths(text: str) -> set[str]:
    """Code spans that are a repository path (`host/src/main.rs`, `scripts/stack`,
    `design.md`), and every `docs/….md` a comment or string names."""
    spans = {s.strip().removeprefix("./") for s in code_spans(text)}
    starts = first_segments()
    paths = {s for s in spans if PATH_LIKE.match(s) and ("/" not in s or s.split("/")[0] in starts)}
    paths |= set(re.findall(r"\bdocs/[\w\-/]+\.md\b", text))
    return {p for p in paths if not p.startswith(GENERATED) and p not in BRIEF}


def exists(path: str, near: Path) -> bool:
    """Relative to the repository, the naming file, `host/src/` (the design map's
    modules) or `host/`; a bare file name anywhere in the repository."""
    if any((base / path).exists() for base in [near.parent, *BASES]):
        return True
    if "/" not in path:
        return any(True for _ in ROOT.glob(f"[!.]*/**/{path}"))
    return False


def files_that_name_docs() -> list[Path]:
    """Besides the pages: the compose file, the dashboard code, and every source file
    whose comments point into docs/ (frozen contract archives excepted)."""
    skip = {"target", ".git", "node_modules", "archive", "results", "dist", "docs"}
    out = [ROOT / "docker-compose.yml", *sorted((ROOT / "superset").glob("*.py"))]
    for p in sorted(ROOT.rglob("*")):
        if p.suffix in {".rs", ".py", ".sh", ".toml", ".yml", ".sql"} and not skip & set(p.relative_to(ROOT).parts):
            if p not in out and "docs/" in p.read_text(errors="replace"):
                out.append(p)
    return out


def test_every_repository_path_the_docs_name_exists():
    missing = []
    for page, text in docs_text().items():
        missing += [f"{page.relative_to(ROOT)}: `{p}`" for p in sorted(named_paths(text)) if not exists(p, page)]
    for source in files_that_name_docs():
        text = source.read_text(errors="replace")
        missing += [f"{source.relative_to(ROOT)}: {p}" for p in sorted(set(re.findall(r"\bdocs/[\w\-/]+\.md\b", text)))
                    if not (ROOT / p).exists()]
    assert not missing, "paths named but not in the repository:\n  " + "\n  ".join(missing)


def test_the_path_check_finds_a_planted_bad_path(tmp_path):
    page = ROOT / "docs" / "design.md"
    planted = page.read_text() + "\nSee `host/src/stages/window.rs` and docs/guarantees.md.\n"
    bad = sorted(p for p in named_paths(planted) if not exists(p, page))
    assert bad == ["docs/guarantees.md", "host/src/stages/window.rs"], bad


# --- ClickHouse objects ------------------------------------------------------------

SQL_SUFFIX = re.compile(r"^[a-z][a-z_]*_(?:mv|queue|raw|final|state|table|ch)$")


def sql_objects() -> set[str]:
    """What sql/migrations/ (and sql/migrate, its version table) create, without the database name."""
    files = [*sorted((ROOT / "sql" / "migrations").glob("*.sql")), ROOT / "sql" / "migrate"]
    text = "\n".join(p.read_text() for p in files)
    return set(re.findall(r"CREATE (?:TABLE|VIEW|MATERIALIZED VIEW)(?: IF NOT EXISTS)? events_db\.(\w+)", text))


def named_sql_objects(text: str) -> set[str]:
    """`events_db.<name>` anywhere, and code spans that are one name of a ClickHouse
    object's shape (`dlq_table`, `events_mv`, `country_event_averages_raw`)."""
    names = set(re.findall(r"\bevents_db\.(\w+)", text))
    return names | {s for s in (s.strip() for s in code_spans(text)) if SQL_SUFFIX.match(s)}


def test_every_clickhouse_object_the_docs_name_exists():
    objects = sql_objects()
    assert {"events", "dlq_table", "country_event_averages_raw"} <= objects, objects
    sources = {**docs_text(), **{p: p.read_text() for p in [ROOT / "docker-compose.yml", *sorted((ROOT / "superset").glob("*.py"))]}}
    missing = [f"{p.relative_to(ROOT)}: {name}" for p, text in sources.items()
               for name in sorted(named_sql_objects(text) - objects)]
    assert not missing, "ClickHouse objects named but not created by sql/migrations/:\n  " + "\n  ".join(missing)


def test_the_clickhouse_check_finds_a_planted_bad_name():
    planted = (ROOT / "docs" / "reference" / "sql.md").read_text() + "\nRead `events_db.dlq_rows` and `events_final`.\n"
    assert sorted(named_sql_objects(planted) - sql_objects()) == ["dlq_rows", "events_final"]


# --- benchmark figures -------------------------------------------------------------

BENCHMARKS = ROOT / "docs" / "benchmarks.md"
# A figure: a number not glued to a word (`p99`, `L1`, `UTF-8` are names), with or
# without thousands separators and decimals.
FIGURE = re.compile(r"(?<![\w.,-])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?![\w]|\.\d)")
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?")
RESULT_LINK = re.compile(r"\[[^\]]*\]\((?:\.\./)*bench/results/([^)\s#]+)\)")
DATE = re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:?\d\d(?::\d\d)?Z?)?\b")


def result_numbers(name: str) -> list[float] | None:
    """Every number in a result file: its values, and the numbers in its keys and
    strings (`backlog_30000`, "linger.ms 50"). None if there is no such file."""
    import json
    path = ROOT / "bench" / "results" / name
    if not path.is_file():
        return None
    out: list[float] = []

    def strings(s: str):
        out.extend(float(m.replace(",", "")) for m in NUMBER.findall(s))

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                strings(k)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            out.append(float(o))
        elif isinstance(o, str):
            strings(o)

    walk(json.loads(path.read_text()))
    return out


def in_results(figure: str, numbers: list[float]) -> bool:
    """`figure` as the page shows it (rounded to its decimals) is one of `numbers`, in
    the same unit or one a thousand, a million, 1024 or 1024² times larger or smaller."""
    x = float(figure.replace(",", ""))
    tolerance = 0.5 * 10 ** -(len(figure.split(".")[1]) if "." in figure else 0) + 1e-9
    scales = (1, 1e3, 1e-3, 1e6, 1e-6, 1024, 1 / 1024, 1048576, 1 / 1048576)
    return any(abs(v * k - x) <= tolerance for v in numbers for k in scales)


def figures_and_files(text: str) -> tuple[list[str], list[str]]:
    """The figures of a piece of the page and the result files it links to. Not
    figures: what is in code (commands, paths, settings), link targets and the text of a
    link to a result file (its name), dates and times of day."""
    files = RESULT_LINK.findall(text)
    text = RESULT_LINK.sub("", text)
    text = re.sub(r"\]\([^)\s]*\)", "]", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = DATE.sub("", text)
    return FIGURE.findall(text), files


def page_blocks(page: str) -> list[list[tuple[str, str]]]:
    """The page as sections (split at `## ` headings), each a list of (kind, text) with
    kind "heading", "paragraph", "header" (a table's first row), "row" (the others),
    fenced code blocks left out. A paragraph runs to the next blank line, table or
    heading; list items belong to their paragraph."""
    sections: list[list[tuple[str, str]]] = [[]]
    para: list[str] = []
    fenced = in_table = False

    def flush():
        if para:
            sections[-1].append(("paragraph", "\n".join(para)))
            para.clear()

    for line in page.splitlines():
        if line.startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("|"):
            flush()
            if not re.fullmatch(r"\|[-:| ]+\|", line.strip()):
                sections[-1].append(("row" if in_table else "header", line))
            in_table = True
            continue
        in_table = False
        if line.startswith("#"):
            flush()
            if line.startswith("## "):
                sections.append([])
            sections[-1].append(("heading", line))
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return sections


def unsourced_figures(page: str) -> list[str]:
    """Every figure on the benchmarks page, each against the result files it is read
    from:

    * a table row's figures must be in a result file linked in that row, and a row with
      figures must link one; a table's header row, in the files its rows link;
    * a paragraph's (and a heading's) figures must be in a result file linked in that
      paragraph or in a row of a table of the same section (between two `## `
      headings).

    A figure is found in a file when the file holds it, rounded as the page shows it
    (`0.13` matches 0.1312; `2` matches anything from 1.5 to 2.5, so small counts are a
    weak check), in the page's unit or one a thousand, a million, 1024 or 1024² times
    the file's (µs and ns, MiB and bytes). Only figures the files hold count: a ratio
    the page shows must be one the file records, not one computed from two of its
    numbers. What is not a figure: numbers in code (commands, paths, settings, in
    backticks or fenced blocks), in link targets and in the text of a link to a result
    file, dates (YYYY-MM-DD, with a time of day), and digits glued to a word or a
    hyphen (`p99`, `L1`, `UTF-8`). A linked result file that does not exist is reported as such."""
    missing: list[str] = []
    for blocks in page_blocks(page):
        parsed = [(kind, text, *figures_and_files(text)) for kind, text in blocks]
        for kind, text, _, files in parsed:
            for name in files:
                if result_numbers(name) is None:
                    missing.append(f"{text[:60]}…: cites bench/results/{name}, which does not exist")
        section_rows = [f for kind, _, _, files in parsed if kind == "row" for f in files]
        for i, (kind, text, figures, files) in enumerate(parsed):
            if not figures:
                continue
            if kind == "row":
                pool = files
            elif kind == "header":
                pool = []
                for k, _, _, fs in parsed[i + 1:]:
                    if k != "row":
                        break
                    pool += fs
            else:
                pool = files + section_rows
            if not pool:
                missing.append(f"{text[:60]}…: figures {figures} but no result file cited")
                continue
            numbers = [n for f in pool for n in (result_numbers(f) or [])]
            missing += [f"{text[:60]}…: {figure} (not in {sorted(set(pool))})"
                        for figure in figures if not in_results(figure, numbers)]
    return missing


def test_every_figure_on_the_benchmarks_page_is_in_its_result_file():
    missing = unsourced_figures(BENCHMARKS.read_text())
    assert not missing, "figures not read from their result file:\n  " + "\n  ".join(missing)


def test_the_figure_check_finds_planted_bad_figures():
    """One figure changed in a table row, one in a paragraph: both are caught."""
    text = BENCHMARKS.read_text()
    planted = text.replace("| **0.798** |", "| **0.789** |", 1)
    planted = planted.replace("(26 % of all CPU samples)", "(62 % of all CPU samples)", 1)
    assert planted.count("0.789") == text.count("0.789") + 1 and "(62 % of" in planted, "nothing planted"
    found = unsourced_figures(planted)
    assert [m for m in found if ": 0.789 " in m and m.startswith("|")], found
    assert [m for m in found if ": 62 " in m and m.startswith("**The spin.**")], found
    assert len(found) == 2, found


def test_the_figure_check_finds_a_row_citing_a_missing_result_file():
    text = BENCHMARKS.read_text()
    planted = text.replace("(../bench/results/2026-12-07-compile.json)",
                           "(../bench/results/2026-12-08-compile.json)", 1)
    assert planted != text, "nothing planted"
    found = unsourced_figures(planted)
    assert [m for m in found if "2026-12-08-compile.json, which does not exist" in m], found
    assert [m for m in found if m.startswith("|") and "(not in ['2026-12-08-compile.json'])" in m], found
