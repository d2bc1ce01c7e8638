"""Look and behaviour of the chat page: theme (local fonts only), CSS, and the page script (ui/script.py)."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Default(
    primary_hue="indigo",
    neutral_hue="slate",
    radius_size="md",
    # System fonts only: no web-font requests at all.
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Liberation Sans", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
)

CSS = """
.gradio-container { max-width: 1480px !important; }
#pc-top { align-items: flex-end; flex-wrap: nowrap !important; }
#pc-head { flex: 1 1 auto !important; }
#pc-tools { flex: 0 0 auto !important; width: auto !important; justify-content: flex-end; align-items: center;
  flex-wrap: nowrap; gap: 8px; }
#pc-header { padding: 4px 2px 0 2px; }
#pc-top .prose, #pc-sources .prose { max-width: none !important; }
#pc-header { position: relative; }
#pc-logout { position: absolute; top: 6px; right: 0; font-size: 0.85rem; color: var(--color-accent) !important; }
#pc-logout[hidden] { display: none; }
#pc-header h1 { font-size: 1.45rem; font-weight: 600; margin: 0; letter-spacing: -0.01em; }
#pc-header .pc-sub { color: var(--body-text-color-subdued); font-size: 0.95rem; }
#pc-chat .message-wrap, #pc-chat .message { font-size: 1rem; line-height: 1.6; }
#pc-chat table { font-size: 0.88rem; line-height: 1.45; }
#pc-chat td, #pc-chat th { vertical-align: top; min-width: 6rem; word-break: normal; overflow-wrap: normal;
  hyphens: auto; padding: 6px 8px; }
#pc-chat td:first-child, #pc-chat th:first-child { min-width: 4.5rem; }
#pc-chat .message-content { overflow-x: auto; }
#pc-compare-pick { max-height: calc(100vh - 380px); overflow-y: auto !important; }
#pc-chat a[href^="#src-"], span.pc-cite {
  display: inline-block; font-size: 0.78em; font-weight: 600; line-height: 1.2; vertical-align: 0.15em;
  padding: 0 0.3em; margin: 0 0.08em; border-radius: 4px; text-decoration: none !important;
  color: var(--color-accent) !important; background: var(--color-accent-soft); cursor: pointer;
}
.dark #pc-chat a[href^="#src-"] { color: #c7d2fe !important; background: rgba(129, 140, 248, 0.28); }
#pc-chat a[href^="#src-"]:hover { background: var(--color-accent); color: white !important; }
.pc-caption { display: block; font-size: 0.82rem; color: var(--body-text-color-subdued); margin-bottom: 2px; }
.pc-notice {
  border-left: 3px solid #d97706; background: rgba(217, 119, 6, 0.08); padding: 6px 10px;
  border-radius: 4px; font-size: 0.9rem; margin-bottom: 6px;
}
.pc-row-title { display: block; font-weight: normal; font-size: 0.75em; line-height: 1.3; color: #64748b; overflow-wrap: anywhere;
  margin-top: 2px; }
.pc-unsup { text-decoration: underline wavy #dc2626; text-decoration-thickness: 1px; text-underline-offset: 3px; }
.pc-unsup-flag { color: #dc2626; font-size: 0.7em; font-weight: 600; margin-left: 2px; }
.pc-abstain {
  border: 1px dashed var(--neutral-400); border-radius: 8px; padding: 10px 14px;
  background: var(--neutral-50); color: var(--body-text-color);
}
.dark .pc-abstain { background: var(--neutral-800); }
.pc-abstain-head { font-weight: 600; font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.06em;
  color: var(--neutral-500); margin-bottom: 4px; }
.pc-abstain ul, .pc-near-box ul { margin: 4px 0 0 1.2em; padding: 0; }
.pc-why { font-size: 0.85rem; color: var(--body-text-color-subdued); margin-top: 2px; }
.pc-near { margin-top: 6px; font-size: 0.9rem; }
#pc-side { position: sticky; top: 8px; }
/* the Sources tab: a comparison's chart (when there is one) above the cards; together they fit the screen */
#pc-sources-col { max-height: calc(100vh - 190px); flex-wrap: nowrap; gap: 6px; }
#pc-sources { flex: 1 1 auto; min-height: 120px; overflow-y: auto !important; padding-right: 4px; }
#pc-chart-box { flex: none; }
.pc-src-for { font-size: 0.85rem; color: var(--body-text-color-subdued); margin: 2px 0 8px 0; }
.pc-src {
  border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px; margin-bottom: 10px;
  background: var(--background-fill-primary); transition: box-shadow 0.3s, border-color 0.3s;
}
.pc-src-uncited { opacity: 0.85; }
.pc-src.pc-flash { border-color: var(--color-accent); box-shadow: 0 0 0 3px var(--color-accent-soft); }
.pc-src-head { display: flex; gap: 8px; align-items: baseline; }
.pc-n { flex: none; font-weight: 700; font-size: 0.8rem; color: white; background: var(--color-accent);
  border-radius: 4px; padding: 0 6px; }
.pc-src-uncited .pc-n { background: var(--neutral-400); }
.pc-src-title { font-weight: 600; font-size: 0.95rem; line-height: 1.35; }
.pc-src-meta { font-size: 0.75rem; color: var(--body-text-color-subdued); margin: 2px 0 6px 0; }
.pc-passage { font-family: Charter, 'Iowan Old Style', Georgia, 'Liberation Serif', serif; font-size: 0.92rem;
  line-height: 1.6; white-space: pre-wrap; overflow-wrap: anywhere; }
mark.pc-hl { background: #fde68a; color: inherit; padding: 1px 0; border-radius: 2px; }
.dark mark.pc-hl { background: #854d0e; }
.pc-rest > summary, .pc-paper > summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
.pc-paper { border-bottom: 1px solid var(--border-color-primary); padding: 4px 0; }
.pc-paper > summary { font-weight: 500; }

.pc-empty { color: var(--body-text-color-subdued); font-size: 0.95rem; padding: 12px 4px; }
#pc-status { min-height: 0; }
#pc-status p { color: #b91c1c; margin: 0; }
#pc-suggest { margin-top: 0; }
/* the landing view: shown while the conversation is empty */
#pc-main:has(#pc-chat .message-wrap) #pc-landing { display: none; }
#pc-chat:has(.placeholder-content) { height: auto !important; min-height: 0 !important; }
#pc-chat .placeholder-content { padding: 6px 0; }
.pc-land-intro { font-size: 0.92rem; color: var(--body-text-color-subdued); margin: 0 0 8px 0; }
.pc-filter, .pc-pick-filter { width: 100%; box-sizing: border-box; padding: 7px 10px; margin-bottom: 8px;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--input-background-fill);
  color: var(--body-text-color); font-size: 0.92rem; }
.pc-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; }
/* the landing: as many cards as the screen holds above compact example questions and the question box */
#pc-landing .pc-cards { max-height: max(240px, calc(100vh - 470px)); overflow-y: auto; padding-right: 4px;
  grid-template-columns: repeat(auto-fill, minmax(205px, 1fr)); gap: 8px; }
#pc-landing .pc-card { padding: 8px 9px; }
#pc-landing .pc-card-title { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical;
  overflow: hidden; }
#pc-landing .pc-card-sum { -webkit-line-clamp: 2; }
#pc-landing .pc-acts { flex-wrap: wrap; gap: 3px; }
#pc-landing .pc-act { flex: none; }
#pc-landing .pc-act { padding: 1px 5px !important; min-width: 0; font-size: 0.74rem; line-height: 1.5;
  white-space: nowrap; }
#pc-landing .pc-filter { margin-bottom: 6px; }
#pc-chat .examples { display: flex !important; flex-wrap: wrap; gap: 6px; padding: 0 !important; }
#pc-chat .examples button.example { flex: 0 1 auto; width: auto; min-height: 0; padding: 6px 12px;
  border-radius: 999px; }
#pc-papers .pc-cards { grid-template-columns: 1fr; max-height: calc(100vh - 260px); overflow-y: auto; }
.pc-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 9px 11px;
  background: var(--background-fill-primary); display: flex; flex-direction: column; gap: 4px; }
.pc-card[hidden] { display: none; }
.pc-card-name { font-weight: 700; font-size: 0.95rem; color: var(--color-accent); }
.pc-card-title { font-weight: 600; font-size: 0.86rem; line-height: 1.3; }
.pc-card-sum { font-size: 0.84rem; line-height: 1.45; color: var(--body-text-color); display: -webkit-box;
  -webkit-line-clamp: 4; -webkit-box-orient: vertical; overflow: hidden; }
#pc-papers .pc-card-sum { -webkit-line-clamp: unset; }
.pc-cite-abs { color: var(--body-text-color-subdued); font-size: 0.78rem; }
.pc-fig { font-size: 0.82rem; background: var(--color-accent-soft); border-radius: 4px; padding: 1px 6px;
  align-self: flex-start; }
.pc-vs { color: var(--body-text-color-subdued); }
.pc-acts { display: flex; gap: 6px; flex-wrap: wrap; margin-top: auto; padding-top: 4px; }
.pc-act { font-size: 0.78rem; padding: 2px 8px; border-radius: 5px; border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--body-text-color); cursor: pointer; }
.pc-act:hover { border-color: var(--color-accent); color: var(--color-accent); }
.pc-act[data-act="ask"] { background: var(--color-accent); color: white; border-color: var(--color-accent); }
.pc-none { color: var(--body-text-color-subdued); padding: 8px; }
/* sources: internals behind details, a way back from a card */
.pc-src-foot { display: flex; gap: 12px; align-items: baseline; margin-top: 6px; font-size: 0.75rem; }
.pc-details { color: var(--body-text-color-subdued); }
.pc-details > summary { cursor: pointer; }
.pc-back { color: var(--color-accent) !important; text-decoration: none !important; cursor: pointer; }
.pc-tips, .pc-refs { display: none !important; }
.pc-reask { font-size: 0.75rem; margin-left: 6px; padding: 0 6px; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: transparent; color: var(--color-accent); }
#pc-pop { position: fixed; z-index: 1000; max-width: min(420px, 92vw); padding: 8px 10px; border-radius: 8px;
  background: var(--background-fill-primary); color: var(--body-text-color); font-size: 0.86rem; line-height: 1.45;
  border: 1px solid var(--border-color-primary); box-shadow: 0 6px 24px rgba(0,0,0,0.18); }
#pc-pop[hidden] { display: none; }
#pc-pop .pc-pop-title { font-weight: 600; font-size: 0.78rem; color: var(--body-text-color-subdued);
  margin-bottom: 3px; }
#pc-pop mark { background: #fde68a; color: inherit; }
#pc-pop a { display: inline-block; margin-top: 4px; color: var(--color-accent); font-size: 0.8rem; cursor: pointer; }
#pc-newpill { position: fixed; z-index: 900; transform: translateX(-50%); padding: 6px 14px; border-radius: 999px;
  border: none; background: var(--color-accent); color: white; font-weight: 600; font-size: 0.88rem; cursor: pointer;
  box-shadow: 0 4px 14px rgba(0,0,0,0.22); }
#pc-newpill[hidden] { display: none; }
.pc-chip-flash { outline: 2px solid var(--color-accent); border-radius: 4px; }
/* a comparison's chart: bars drawn by the browser (meter), labelled in text, readable at any width */
.pc-cite-link { font-weight: 600; text-decoration: none !important; color: var(--color-accent) !important; }
#pc-chart-box { gap: 4px; }
#pc-chart-box:not(:has(.pc-chart-cap)) { display: none !important; }
.pc-chart-cap { font-size: 0.82rem; color: var(--body-text-color-subdued); }
.pc-chart { display: flex; flex-direction: column; gap: 6px; margin: 2px 0 4px 0; color: var(--body-text-color); }
.pc-sr { position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; margin: 0; }
.pc-chart-title { font-size: 0.8rem; font-weight: 600; color: var(--body-text-color-subdued); }
.pc-bar-row { display: grid; grid-template-columns: minmax(5rem, 8.5rem) minmax(0, 1fr); gap: 8px; align-items: center;
  font-size: 0.88rem; line-height: 1.3; }
.pc-bar-name { overflow-wrap: anywhere; }
.pc-bar-track { display: flex; flex-direction: column; gap: 1px; min-width: 0; }
meter.pc-bar { width: 100%; height: 14px; }
meter.pc-bar::-webkit-meter-bar { background: var(--neutral-100); border: none; border-radius: 3px; height: 14px; }
meter.pc-bar::-webkit-meter-optimum-value { background: #4f46e5; border-radius: 3px; }
meter.pc-bar::-moz-meter-bar { background: #4f46e5; }
.pc-bar-val { font-size: 0.82rem; overflow-wrap: anywhere; }
.pc-chart-note { font-size: 0.78rem; color: var(--body-text-color-subdued); }
.pc-chart-inline { display: none; margin-top: 10px; }
/* what an upload gave: a line per paper added, or per file that could not be */
.pc-upload-result { font-size: 0.9rem; }
.pc-upload-result p { margin: 4px 0; }
.pc-upload-result ul { margin: 2px 0 0 1.1em; padding: 0; }
.pc-upload-result li { margin: 2px 0; }
.pc-upload-failed, .pc-upload-error { color: #b91c1c; }
.pc-upload-skip, .pc-upload-same { color: var(--body-text-color-subdued); }
/* the Evaluate tab: what each metric measures, an answer as read */
.pc-eval-what { font-size: 0.78rem; color: var(--body-text-color-subdued); font-weight: normal; line-height: 1.3; }
.pc-eval-how { font-size: 0.85rem; color: var(--body-text-color-subdued); }
.pc-eval-answer { font-size: 0.9rem; }
.pc-eval-scroll { overflow-x: auto; max-width: 100%; }
/* the "Add to test set" dialog: over the chat, where the user is, the page dimmed behind it */
#pc-qform { position: fixed !important; z-index: 1100; top: 4vh; left: 50%; transform: translateX(-50%);
  width: min(620px, 94vw) !important; max-height: 92vh; overflow-y: auto; padding: 16px 18px !important;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); border-radius: 12px;
  box-shadow: 0 0 0 100vmax rgba(15, 23, 42, 0.45), 0 12px 40px rgba(0, 0, 0, 0.3); }
#pc-qform > * { flex-shrink: 0; }
.pc-qform-head { font-size: 1.1rem; font-weight: 600; }
.pc-qform-turns { margin: 0 0 0 1.2em; padding: 0; font-size: 0.88rem; line-height: 1.45; }
.pc-qform-turns li { margin: 2px 0; }
.pc-qform-none { font-size: 0.88rem; color: var(--body-text-color-subdued); }
/* warnings never cover the header's buttons */
.toast-wrap { top: auto !important; bottom: 12px !important; }
/* sources drawer under each answer: narrow screens only */
.pc-drawer { display: none; margin-top: 8px; border-top: 1px solid var(--border-color-primary); padding-top: 4px; }
.pc-drawer > summary { cursor: pointer; font-weight: 600; font-size: 0.9rem; }
@media (max-width: 760px) {
  .gradio-container { padding: 4px 6px !important; }
  #pc-top { flex-wrap: wrap !important; }
  #pc-tools { justify-content: flex-start; flex-wrap: wrap; width: 100% !important; }
  body, .gradio-container { overflow-x: hidden; }
  #pc-body > * { min-width: 0 !important; flex-basis: 100% !important; }
  .pc-land-intro { font-size: 0.82rem; }
  #pc-header h1 { font-size: 1.2rem; }
  #pc-header .pc-sub { font-size: 0.85rem; }
  .pc-drawer { display: block; }
  #pc-side { position: static; }
  #pc-main { min-width: 0 !important; }
  #pc-chat { height: auto !important; max-height: none !important; min-height: 300px !important; }
  /* the cards in one row that scrolls sideways, so the question box is on the first screen */
  #pc-landing .pc-cards { display: flex; overflow-x: auto; overflow-y: hidden; max-height: none;
    scroll-snap-type: x mandatory; padding: 0 0 6px 0; }
  #pc-landing .pc-card { flex: 0 0 80%; scroll-snap-align: start; }
  #pc-landing .pc-card-sum { -webkit-line-clamp: 2; }
  #pc-tools button[disabled] { display: none; }
  .pc-land-intro .pc-land-more { display: none; }
  /* tables (the comparison and its split results) stack: one card per row, each cell under its column's name */
  #pc-chat table, #pc-chat table tbody, #pc-chat table tr, #pc-chat table td { display: block; width: 100%; }
  #pc-chat table thead { display: none; }
  #pc-chat table tr { border: 1px solid var(--border-color-primary); border-radius: 6px;
    margin-bottom: 8px; padding: 4px 6px; box-sizing: border-box; }
  #pc-chat table td { min-width: 0 !important; border: none !important; padding: 2px 0 !important;
    box-sizing: border-box; overflow-wrap: anywhere; }
  #pc-chat td[data-label]::before { content: attr(data-label); display: block; font-size: 0.72rem;
    text-transform: uppercase; letter-spacing: 0.04em; color: var(--body-text-color-subdued); }
  /* a stacked row opens with its paper's name as its heading; cells with nothing to say are left out */
  #pc-chat td:first-child[data-label]::before, #pc-chat td[data-empty] { display: none; }
  #pc-chat td:first-child { font-size: 1.02rem; padding-bottom: 4px !important; }
  /* a comparison's chart under its table (the side panel is far below) */
  .pc-chart-inline { display: block; }
  #pc-chart-cap { display: none; }
}
"""



