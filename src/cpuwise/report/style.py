"""The HTML report's stylesheet (inline, so the file opens anywhere offline)."""

from __future__ import annotations

CSS = """
:root { --fg: #1f2933; --muted: #616e7c; --bg: #f5f7fa; --card: #ffffff; --line: #e4e7eb;
        --high: #c0392b; --moderate: #d68910; --info: #1e8449; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 40px; }
header h1 { margin: 0 0 4px; font-size: 26px; letter-spacing: -0.5px; }
.cmd code { background: #e4e7eb; padding: 3px 8px; border-radius: 4px; font-size: 14px; }
.meta { color: var(--muted); margin: 8px 0 16px; }
.verdict { border-left: 6px solid var(--info); background: var(--card); padding: 14px 18px; margin: 0 0 18px;
           border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.verdict .vlabel { text-transform: uppercase; font-size: 12px; letter-spacing: 1px; color: var(--muted); }
.verdict .vtitle { font-size: 22px; font-weight: 700; }
.verdict p { margin: 4px 0 0; }
.verdict.sev-high { border-color: var(--high); } .verdict.sev-moderate { border-color: var(--moderate); }
.card { background: var(--card); border-radius: 8px; padding: 16px 20px; margin: 0 0 18px;
        box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card h2 { margin: 0 0 6px; font-size: 18px; }
.caption, .note { color: var(--muted); margin: 4px 0 10px; font-size: 13.5px; }
.note { font-style: italic; }
.finding { border: 1px solid var(--line); border-left: 5px solid var(--info); border-radius: 6px;
           padding: 10px 14px; margin: 10px 0; }
.finding.sev-high { border-left-color: var(--high); }
.finding.sev-moderate { border-left-color: var(--moderate); }
.finding h3 { margin: 0 0 4px; font-size: 16px; }
.badge { display: inline-block; font-size: 11px; text-transform: uppercase; color: #fff; padding: 1px 7px;
         border-radius: 10px; background: var(--info); vertical-align: 2px; }
.sev-high .badge { background: var(--high); } .sev-moderate .badge { background: var(--moderate); }
.conf { float: right; color: var(--muted); font-weight: 400; font-size: 13px; }
.evidence { margin: 4px 0; padding-left: 20px; color: #323f4b; font-size: 14px; }
.fix { margin: 6px 0; }
pre { background: #1f2933; color: #e4e7eb; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
      font-size: 12.5px; line-height: 1.45; }
details summary { cursor: pointer; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left; }
table.num td:not(:nth-child(2)) { font-variant-numeric: tabular-nums; }
svg.plot { display: block; margin: 6px 0 10px; background: #fff; }
svg .grid { stroke: #e4e7eb; stroke-width: 1; }
svg .axis { stroke: #9aa5b1; stroke-width: 1; }
svg .tick, svg .label, svg .legend { font: 12px sans-serif; fill: #52606d; }
svg .legend { fill: #1f2933; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"""
