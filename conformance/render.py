"""Rendering primitives shared by the reports: one stylesheet, the page shell, tables in
HTML and in Markdown (plain GitHub tables, so a report fits a job summary).

Every page is self-contained: inline CSS and SVG, no scripts, no fetches.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A job summary takes at most 1 MiB per step; stay well under it.
MARKDOWN_BUDGET = 900 * 1024

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0b3d66;
--pass:#dafbe1;--pass-fg:#0f5323;--fail:#ffe3e0;--fail-fg:#8c0a1f;--dev:#fff1bf;
--dev-fg:#6b4200;--skip:#eef1f4;--skip-fg:#4d5761;--link:#0550ae}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:var(--fg);background:#fff}
header.top{background:var(--accent);color:#fff;padding:1.3rem 2rem 1.1rem}
header.top h1{margin:0;font-size:1.55rem;font-weight:650;letter-spacing:.01em}
header.top p{margin:.25rem 0 0;color:#cfe0f1}
main{max-width:86rem;margin:0 auto;padding:.6rem 2rem 3rem}
nav.toc{margin:1rem 0 0;font-size:.9rem;color:var(--muted)}
nav.toc a{margin-right:1rem}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
td a{overflow-wrap:anywhere}
h2{font-size:1.22rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:1.6rem 0 .4rem}
p.note{color:var(--muted);margin:.2rem 0 .6rem;max-width:60rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem;font-size:.88rem}
th,td{border-bottom:1px solid var(--line);padding:.32rem .6rem;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
table.kv th{width:11rem;background:none;color:var(--muted);font-weight:500}
table.zebra tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
td.zero{color:#b3bbc4}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.group th{background:#e8eef5;color:var(--accent);font-size:.95rem;padding-top:.5rem}
code,.id{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
word-break:break-all}
.muted{color:var(--muted)}
.badge{display:inline-block;padding:.05rem .6rem;border-radius:1rem;font-weight:600;
font-size:.85rem;white-space:nowrap}
.b-met{background:var(--pass);color:var(--pass-fg)}
.b-notmet{background:var(--fail);color:var(--fail-fg)}
.b-incomplete{background:var(--dev);color:var(--dev-fg)}
.b-none{background:var(--skip);color:var(--skip-fg)}
td.c{white-space:nowrap;font-weight:550;text-align:center}
td.c a{color:inherit;display:block}
.c-pass{background:var(--pass);color:var(--pass-fg)}
.c-fail{background:var(--fail);color:var(--fail-fg)}
.c-deviation{background:var(--dev);color:var(--dev-fg)}
.c-unclaimed{background:var(--skip);color:var(--skip-fg);font-weight:400}
.c-na{background:#fff;color:#8c959f;font-weight:400}
.c-missing{background:repeating-linear-gradient(135deg,#fff 0 6px,#ffe3e0 6px 12px);
color:var(--fail-fg)}
.legend span.c{display:inline-block;padding:.05rem .6rem;margin:0 .4rem .3rem 0;
border-radius:4px;border:1px solid var(--line);font-size:.85rem}
.status-FAIL,.status-ERROR,.status-CRASH,.status-TIMEOUT,.status-XPASS{color:var(--fail-fg);
font-weight:600}
.status-XFAIL{color:var(--dev-fg);font-weight:600}
.status-PASS{color:var(--pass-fg)}
.banner{border:2px solid #cf222e;background:#ffe3e0;color:#82071e;padding:.8rem 1rem;
border-radius:6px;font-weight:650;margin:1.2rem 0}
.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid var(--line);border-radius:8px;padding:.6rem .9rem;min-width:13rem;
max-width:18rem;background:#fff}
.card .big{font-size:1.45rem;font-weight:650}
.card .small{color:var(--muted);font-size:.85rem}
details{margin:.3rem 0}
details>summary{cursor:pointer;padding:.35rem .2rem;font-weight:550}
details>summary .muted{font-weight:400}
tr:target>td,tr:target>th{background:#ddf4ff!important;box-shadow:inset 0 0 0 2px #0969da}
ul.compact{margin:.1rem 0;padding-left:1.1rem}
ul.compact li{margin:.05rem 0}
ul.plain{list-style:none;margin:0;padding:0}ul.plain li{white-space:nowrap;margin:.1rem 0}
table.matrix{table-layout:fixed}table.matrix th:first-child{width:36%}
table.matrix th:last-child{width:11rem}
table.dev{table-layout:fixed}table.dev th:first-child{width:58%}table.dev th:last-child{width:5rem}
table.rows{table-layout:fixed}table.rows th:first-child{width:34%}
table.rows th:nth-child(2){width:30%}table.rows th:nth-child(3){width:9rem}
table.areas th,table.areas td{padding:.3rem .45rem}
table.diff{table-layout:fixed}table.diff th:first-child{width:46%}
table.diff th:nth-child(2),table.diff th:nth-child(3){width:6.5rem}
.card .big.bad{color:var(--fail-fg)}.card .big.good{color:var(--pass-fg)}
table.findings{table-layout:fixed}table.findings th:first-child{width:6rem}
table.findings th:nth-child(3){width:9rem}table.findings th:last-child{width:22%}
table.fails{table-layout:fixed}table.fails th:first-child{width:38%}
table.fails th:nth-child(2){width:6rem}
svg.heat{max-width:100%;height:auto;margin:.4rem 0 1rem}
svg.heat text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
"""


def esc(text: object) -> str:
    return html.escape(str(text))


def link(url: str, text: str | None = None) -> str:
    """An HTML link; only http(s) and relative targets are linked, anything else is text."""
    if url.startswith(("http://", "https://")) or not url.split("/")[0].count(":"):
        return f'<a href="{esc(url)}">{esc(text if text is not None else url)}</a>'
    return esc(text if text is not None else url)


@dataclass(frozen=True)
class Cell:
    """One HTML table cell: already-escaped content, CSS class, tooltip."""

    content: str
    css: str = ""
    title: str = ""
    header: bool = False

    def html(self) -> str:
        tag = "th" if self.header else "td"
        attrs = (f' class="{self.css}"' if self.css else "") + (
            f' title="{esc(self.title)}"' if self.title else "")
        return f"<{tag}{attrs}>{self.content}</{tag}>"


def text_cell(text: object, css: str = "") -> Cell:
    return Cell(esc(text), css)


def num_cell(value: object) -> Cell:
    return Cell(esc(value), "num zero" if value in (0, "0", "-") else "num")


def html_table(columns: Sequence[str | Cell], rows: Iterable[Sequence[Cell] | str],
               css: str = "zebra") -> str:
    """A table; a row given as a string is inserted as is (group headers, ids)."""
    head = "".join(c.html() if isinstance(c, Cell) else f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(r if isinstance(r, str) else "<tr>" + "".join(c.html() for c in r) + "</tr>"
                   for r in rows)
    return (f'<table class="{css}">' + (f"<thead><tr>{head}</tr></thead>" if head else "")
            + f"<tbody>{body}</tbody></table>")


def page(title: str, subtitle: str, body: Iterable[str], toc: Sequence[tuple[str, str]] = ()
         ) -> str:
    nav = (('<nav class="toc">' + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in toc)
            + "</nav>") if toc else "")
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f'<header class="top"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>',
        f"<main>{nav}",
        *body,
        "</main></body></html>",
    ])


def md_cell(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(columns: Sequence[str], rows: Iterable[Sequence[str]],
             numeric: Sequence[int] = ()) -> list[str]:
    """A plain GitHub table; cells are Markdown already (escape them with md_cell)."""
    align = ["---:" if i in numeric else "---" for i in range(len(columns))]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def md_link(text: str, url: str) -> str:
    return f"[{md_cell(text)}]({url.replace(' ', '%20').replace(')', '%29')})"
