"""Look and behaviour of the chat page: theme (local fonts only), CSS, and the citation-click script."""

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
#pc-header h1 { font-size: 1.45rem; font-weight: 600; margin: 0; letter-spacing: -0.01em; }
#pc-header .pc-sub { color: var(--body-text-color-subdued); font-size: 0.95rem; }
#pc-chat .message-wrap, #pc-chat .message { font-size: 1rem; line-height: 1.6; }
#pc-chat table { font-size: 0.88rem; line-height: 1.45; }
#pc-chat td, #pc-chat th { vertical-align: top; min-width: 9rem; word-break: normal; overflow-wrap: normal;
  hyphens: auto; }
#pc-chat td:first-child { min-width: 7rem; }
#pc-chat .message-content { overflow-x: auto; }
#pc-compare-pick { max-height: calc(100vh - 330px); overflow-y: auto !important; }
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
#pc-sources { max-height: calc(100vh - 190px); overflow-y: auto !important; padding-right: 4px; }
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
.pc-papers { max-height: calc(100vh - 330px); overflow-y: auto; }
.pc-empty { color: var(--body-text-color-subdued); font-size: 0.95rem; padding: 12px 4px; }
#pc-status { min-height: 0; }
#pc-status p { color: #b91c1c; margin: 0; }
#pc-suggest { margin-top: 0; }
"""

# Citation clicks: show the Sources tab and scroll its card into view (waits for the panel to re-render when the
# citation belongs to an older answer).
JS = """
() => {
  const scrollToCard = (id) => {
    let tries = 0;
    const go = () => {
      const el = document.getElementById(id);
      if (!el || el.getClientRects().length === 0) { if (++tries < 50) setTimeout(go, 100); return; }
      const box = el.closest('#pc-sources');
      if (box) {
        box.scrollIntoView({block: 'nearest'});
        const top = box.scrollTop + el.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
        box.scrollTo({top: top, behavior: 'smooth'});
      } else {
        el.scrollIntoView({block: 'nearest', behavior: 'smooth'});
      }
      el.classList.remove('pc-flash'); void el.offsetWidth; el.classList.add('pc-flash');
      setTimeout(() => el.classList.remove('pc-flash'), 2500);
    };
    go();
  };
  document.addEventListener('click', (ev) => {
    const a = ev.target && ev.target.closest ? ev.target.closest('#pc-chat a[href^="#src-"]') : null;
    if (!a) return;
    const id = (a.getAttribute('href') || '').replace(/^#/, '');
    if (!/^src-[0-9]+-[0-9]+$/.test(id)) return;
    ev.preventDefault();
    const tab = Array.from(document.querySelectorAll('button[role="tab"]'))
      .find((b) => b.textContent.trim().startsWith('Sources'));
    if (tab && tab.getAttribute('aria-selected') !== 'true') tab.click();
    scrollToCard(id);
  }, true);
}
"""
