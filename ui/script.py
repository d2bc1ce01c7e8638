"""The page script (Gradio's `js`): citation chips (popover, jump to the card and back, the drawer on narrow screens),
clean copying, editing the rewritten question, the collection's search and card actions, the compare picker's filter,
and following the conversation (a new turn scrolled into view, a pill when the reader scrolled away). Everything it
shows is set as text (textContent), never as HTML."""

JS = r"""
() => {
  const $ = (s, r = document) => r.querySelector(s);
  const narrow = () => window.matchMedia('(max-width: 760px)').matches;
  const when = (sel, fn, tries = 100) => {
    const el = $(sel);
    if (el) fn(el); else if (tries > 0) setTimeout(() => when(sel, fn, tries - 1), 100);
  };
  // Open at the top: focusing the question box on a phone scrolled the header away.
  when('#pc-question textarea', (ta) => {
    if (!narrow()) ta.focus({preventScroll: true});
    window.scrollTo(0, 0);
  });

  // With a login, the header offers "Log out" (Gradio's config names the user only then).
  when('#pc-logout', (a) => { if (window.gradio_config && window.gradio_config.username) a.hidden = false; });

  const setText = (sel, value) => {
    const el = $(sel + ' textarea') || $(sel + ' input');
    if (!el) return null;
    const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
    el.dispatchEvent(new Event('input', {bubbles: true}));
    return el;
  };
  const flash = (el, cls) => {
    el.classList.remove(cls); void el.offsetWidth; el.classList.add(cls);
    setTimeout(() => el.classList.remove(cls), 2500);
  };
  const messageOf = (el) => el.closest('[data-testid="bot"], [data-testid="user"]');

  // -- citation chips: jump to the card (side panel, or the drawer under the answer on narrow screens) -----------
  let lastChip = null;
  // Where a card sits in the side panel: its top, or its highlighted sentence when the card is taller than the panel.
  const cardTarget = (box, el) => {
    const mark = el.querySelector('mark.pc-hl');
    const top = el.getBoundingClientRect().top;
    if (mark && mark.getBoundingClientRect().bottom - top > box.clientHeight - 16) return mark;
    return el;
  };
  const alignCard = (box, el, how) => {
    box.scrollIntoView({block: 'nearest'});
    const target = cardTarget(box, el);
    const seen = Math.max(0, box.getBoundingClientRect().top);  // the panel's top edge on screen
    const top = box.scrollTop + target.getBoundingClientRect().top - seen - 8;
    box.scrollTo({top: top, behavior: how});
  };
  // A comparison's chart arriving above the cards, or Gradio re-rendering the panel, moves or replaces the card a
  // moment after the jump (later on a busy machine). For 6 s, until the reader scrolls or clicks, look up the card
  // by id again every 300 ms and align it when it is out of view.
  let settling = null;
  const keepAligned = (id) => {
    if (settling) settling.abort();
    const ctl = new AbortController();
    settling = ctl;
    ['wheel', 'touchstart', 'keydown', 'mousedown'].forEach((ev) =>
      document.addEventListener(ev, () => ctl.abort(), {capture: true, signal: ctl.signal}));
    const until = Date.now() + 6000;
    const look = () => {
      if (ctl.signal.aborted) return;
      if (Date.now() > until) { ctl.abort(); return; }
      const el = document.getElementById(id), box = el && el.closest('#pc-sources');
      if (box && el.getClientRects().length) {
        const r = cardTarget(box, el).getBoundingClientRect(), b = box.getBoundingClientRect();
        const top = Math.max(0, b.top), bottom = Math.min(window.innerHeight, b.bottom);
        if (r.top < top - 1 || r.top > bottom - 40) alignCard(box, el, 'auto');
      }
      setTimeout(look, 300);
    };
    setTimeout(look, 300);
  };
  const scrollToCard = (id, chip) => {
    let tries = 0;
    const go = () => {
      let el = null;
      if (narrow() && chip) {
        const msg = messageOf(chip);
        const drawer = msg && msg.querySelector('details.pc-drawer');
        if (drawer) { drawer.open = true; el = drawer.querySelector('#m-' + CSS.escape(id)); }
      }
      el = el || document.getElementById(id);
      if (!el || el.getClientRects().length === 0) { if (++tries < 50) setTimeout(go, 100); return; }
      const box = el.closest('#pc-sources');
      if (box) {
        alignCard(box, el, 'smooth');
        keepAligned(id);
      } else {
        el.scrollIntoView({block: 'nearest', behavior: 'smooth'});
      }
      flash(el, 'pc-flash');
    };
    go();
  };
  const chipOf = (t) => (t && t.closest) ? t.closest('#pc-chat a[href^="#src-"]') : null;
  const chipId = (a) => {
    const id = (a.getAttribute('href') || '').replace(/^#/, '');
    return /^src-[0-9]+-[0-9]+$/.test(id) ? id : null;
  };
  const jump = (a) => {
    const id = chipId(a);
    if (!id) return;
    lastChip = a;
    if (!narrow()) {
      const tab = Array.from(document.querySelectorAll('button[role="tab"]'))
        .find((b) => b.textContent.trim().startsWith('Sources'));
      if (tab && tab.getAttribute('aria-selected') !== 'true') tab.click();
    }
    scrollToCard(id, a);
  };

  // -- the popover: the cited sentence, a link to its card ---------------------------------------------------------
  const pop = document.createElement('div');
  pop.id = 'pc-pop'; pop.hidden = true; pop.setAttribute('role', 'tooltip');
  document.body.appendChild(pop);
  let popChip = null, hideTimer = null;
  const showPop = (a) => {
    const id = chipId(a);
    const tip = id && document.getElementById('tip-' + id);
    if (!tip) return false;
    clearTimeout(hideTimer);
    pop.textContent = '';
    const title = document.createElement('div');
    title.className = 'pc-pop-title';
    const name = tip.querySelector('b'), said = tip.querySelector('i');
    title.textContent = '[' + id.split('-')[2] + '] ' + (name ? name.textContent : '');
    const body = document.createElement('mark');
    body.textContent = said ? said.textContent : tip.textContent;
    const link = document.createElement('a');
    link.textContent = 'Show the passage ↓';
    link.addEventListener('click', (ev) => { ev.preventDefault(); pop.hidden = true; jump(a); });
    pop.append(title, body, document.createElement('br'), link);
    pop.hidden = false;
    const r = a.getBoundingClientRect();
    const w = Math.min(420, window.innerWidth * 0.92);
    pop.style.left = Math.max(8, Math.min(r.left, window.innerWidth - w - 8)) + 'px';
    const below = r.bottom + 6, h = pop.offsetHeight;
    pop.style.top = (below + h < window.innerHeight ? below : Math.max(8, r.top - h - 6)) + 'px';
    popChip = a;
    return true;
  };
  const hideSoon = () => { clearTimeout(hideTimer); hideTimer = setTimeout(() => { pop.hidden = true; }, 350); };
  pop.addEventListener('mouseenter', () => clearTimeout(hideTimer));
  pop.addEventListener('mouseleave', hideSoon);
  document.addEventListener('mouseover', (ev) => {
    if (touch) return;  // a tap's emulated mouseover: the click that follows opens the popover
    const a = chipOf(ev.target);
    if (a && a !== popChip || (a && pop.hidden)) showPop(a);
  });
  document.addEventListener('mouseout', (ev) => { if (chipOf(ev.target)) hideSoon(); });
  let touch = false;
  document.addEventListener('pointerdown', (ev) => { touch = ev.pointerType === 'touch'; }, true);

  // -- copying: the text as read, with a reference list, not the Markdown's link targets -------------------------
  const cleanText = (msg) => {
    const copy = msg.cloneNode(true);
    copy.querySelectorAll('.pc-tips, .pc-refs, .pc-drawer, .pc-reask, .pc-unsup-flag, button, .pc-chart-inline').forEach((e) => e.remove());
    const holder = document.createElement('div');
    holder.style.cssText = 'position:fixed;left:-9999px;top:0;white-space:normal;';
    holder.appendChild(copy); document.body.appendChild(holder);
    const text = copy.innerText.replace(/\n{3,}/g, '\n\n').trim();
    holder.remove();
    const refs = Array.from(msg.querySelectorAll('.pc-refs span')).map((s) => s.textContent);
    return refs.length ? text + '\n\nReferences\n' + refs.join('\n') : text;
  };
  const writeClip = (text, btn) => {
    window.__pcCopied = text;
    const done = () => { if (btn) { btn.setAttribute('title', 'Copied'); setTimeout(() => btn.setAttribute('title', 'Copy'), 1500); } };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, done);
  };

  document.addEventListener('click', (ev) => {
    const t = ev.target;
    if (!t || !t.closest) return;
    const copyOne = t.closest('#pc-chat button[aria-label="Copy message"]');
    const copyAll = t.closest('#pc-chat button[aria-label="Copy conversation"]');
    if (copyOne || copyAll) {
      ev.preventDefault(); ev.stopImmediatePropagation();
      if (copyOne) {
        const row = copyOne.closest('.message-row');
        const msg = row && row.querySelector('[data-testid="bot"], [data-testid="user"]');
        if (msg) writeClip(cleanText(msg), copyOne);
      } else {
        const parts = Array.from(document.querySelectorAll('#pc-chat [data-testid="bot"], #pc-chat [data-testid="user"]'))
          .map((m) => (m.dataset.testid === 'user' ? 'You: ' : 'paperchat: ') + cleanText(m));
        writeClip(parts.join('\n\n'), copyAll);
      }
      return;
    }
    const a = chipOf(t);
    if (a) {
      ev.preventDefault();
      if (touch && (pop.hidden || popChip !== a)) { if (showPop(a)) return; }
      pop.hidden = true;
      jump(a);
      return;
    }
    const link = t.closest('a.pc-cite-link');
    if (link) {
      ev.preventDefault();
      const id = (link.getAttribute('href') || '').replace(/^#/, '');
      const chip = document.querySelector('#pc-chat a[href="#' + id + '"]');
      if (chip) jump(chip); else scrollToCard(id, null);
      return;
    }
    const back = t.closest('a.pc-back');
    if (back) {
      ev.preventDefault();
      const id = (back.getAttribute('href') || '').replace(/^#(m-)?/, '');
      const chip = (lastChip && chipId(lastChip) === id && lastChip.isConnected) ? lastChip
        : document.querySelector('#pc-chat a[href="#' + id + '"]');
      if (chip) { chip.scrollIntoView({block: 'center', behavior: 'smooth'}); flash(chip, 'pc-chip-flash'); }
      return;
    }
    const reask = t.closest('a.pc-reask');
    if (reask) {
      ev.preventDefault();
      const said = reask.parentElement && reask.parentElement.querySelector('em');
      const ta = setText('#pc-question', said ? said.textContent : '');
      if (ta) { ta.focus(); ta.scrollIntoView({block: 'nearest'}); }
      return;
    }
    const act = t.closest('button.pc-act');
    if (act) {
      ev.preventDefault();
      setText('#pc-action', JSON.stringify({act: act.dataset.act, id: act.dataset.id, at: Date.now()}));
      setTimeout(() => { const go = $('#pc-action-go'); if (go) go.click(); }, 80);
      return;
    }
    if (!t.closest('#pc-pop')) pop.hidden = true;
  }, true);

  // -- search boxes: the collection's cards, the compare picker ----------------------------------------------------
  document.addEventListener('input', (ev) => {
    const t = ev.target;
    if (!t || !t.matches) return;
    const words = (t.value || '').toLowerCase().split(/\s+/).filter(Boolean);
    const hit = (text) => words.every((w) => text.includes(w));
    if (t.matches('.pc-filter')) {
      const box = t.closest('.pc-collection');
      let shown = 0;
      box.querySelectorAll('.pc-card').forEach((c) => { c.hidden = !hit(c.dataset.search || ''); shown += !c.hidden; });
      const none = box.querySelector('.pc-none');
      if (none) none.hidden = shown > 0;
    } else if (t.matches('.pc-pick-filter')) {
      document.querySelectorAll('#pc-compare-pick label').forEach((l) => {
        l.style.display = hit(l.textContent.toLowerCase()) ? '' : 'none';
      });
    }
  });

  // -- the chat as it changes: table labels for narrow screens, and following the conversation --------------------
  // A new question (typed, an example, a card's Ask, a comparison, a restored or reopened conversation) is scrolled
  // to the top of the chat, so its answer grows below it in view: the chat's own panel on a wide screen, the page on
  // a narrow one. The reader who scrolls takes over; one who scrolled away from the new turn is offered a pill.
  const panelOf = () => (narrow() ? null : $('#pc-chat .panel-wrap'));  // narrow: the chat grows with the page
  const view = () => {  // the scrolled box: its visible top and bottom on screen, its offset of a rect's top
    const panel = panelOf();
    if (panel) {
      const r = panel.getBoundingClientRect();
      return {panel, top: Math.max(0, r.top), bottom: Math.min(innerHeight, r.bottom),
              at: (rect) => panel.scrollTop + rect.top - r.top, max: panel.scrollHeight - panel.clientHeight,
              go: (y) => { panel.scrollTop = y; }, glide: (y) => panel.scrollTo({top: y, behavior: 'smooth'})};
    }
    const doc = document.scrollingElement;
    return {panel: null, top: 0, bottom: innerHeight, at: (rect) => scrollY + rect.top,
            max: doc.scrollHeight - innerHeight, go: (y) => window.scrollTo(0, y),
            glide: (y) => window.scrollTo({top: y, behavior: 'smooth'})};
  };
  const turnOf = (chat) => {
    const users = chat.querySelectorAll('[data-testid="user"]'), bots = chat.querySelectorAll('[data-testid="bot"]');
    const q = users[users.length - 1];
    return {count: users.length, question: q && (q.closest('.message-row') || q), answer: bots[bots.length - 1]};
  };
  const turnInView = (chat) => {
    const t = turnOf(chat), v = view();
    if (!t.question) return true;
    const top = t.question.getBoundingClientRect().top;
    const bottom = (t.answer || t.question).getBoundingClientRect().bottom;
    return top < v.bottom - 30 && bottom > v.top + 30;
  };
  const pill = document.createElement('button');
  pill.id = 'pc-newpill'; pill.type = 'button'; pill.hidden = true; pill.textContent = '↓ New answer';
  document.body.appendChild(pill);
  let following = false, asked = 0, lastCount = 0, releaseTimer = null;
  const toTurn = (chat, smooth) => {
    const t = turnOf(chat);
    if (!t.question) return;
    const v = view();
    if (v.panel) {  // the chat's panel itself on screen first (a card's Ask from far down the page)
      const r = v.panel.getBoundingClientRect();
      if (r.bottom < 40 || r.top > innerHeight - 40) v.panel.scrollIntoView({block: 'nearest'});
    }
    const y = Math.max(0, Math.min(view().at(t.question.getBoundingClientRect()) - 8, view().max));
    if (smooth) view().glide(y); else view().go(y);
  };
  const placePill = () => {
    const box = ($('#pc-chat') || document.body).getBoundingClientRect();
    const bottom = Math.min(innerHeight, box.bottom);
    pill.style.left = Math.round(Math.max(box.left, 0) + Math.min(box.width, innerWidth) / 2) + 'px';
    pill.style.top = Math.round(bottom - 52) + 'px';
  };
  pill.addEventListener('click', () => {
    const chat = $('#pc-chat');
    pill.hidden = true;
    if (chat) toTurn(chat, true);
  });
  ['wheel', 'touchmove', 'mousedown'].forEach((ev) => document.addEventListener(ev, (e) => {
    if (e.target && e.target.closest && e.target.closest('#pc-newpill')) return;
    following = false;
  }, {capture: true, passive: true}));
  document.addEventListener('keydown', (e) => {
    const typing = e.target && e.target.closest && e.target.closest('textarea, input, select, [contenteditable]');
    if (!typing && ['PageUp', 'PageDown', 'ArrowUp', 'ArrowDown', 'Home', 'End', ' '].includes(e.key)) {
      following = false;
    }
  }, true);
  document.addEventListener('scroll', () => {
    const chat = $('#pc-chat');
    if (!pill.hidden && chat && turnInView(chat)) pill.hidden = true;
    else if (!pill.hidden) placePill();
  }, {capture: true, passive: true});
  window.addEventListener('resize', () => { if (!pill.hidden) placePill(); });
  const finished = (bot) => bot && bot.querySelector('.pc-tips, .pc-abstain, .pc-drawer, .pc-refs');
  const onChat = (chat) => {
    chat.querySelectorAll('table:not([data-labelled])').forEach((table) => {
      const heads = Array.from(table.querySelectorAll('thead th')).map((th) => th.textContent.trim());
      if (!heads.length || !table.querySelector('tbody td')) return;
      table.querySelectorAll('tbody tr').forEach((tr) => {
        Array.from(tr.children).forEach((td, i) => {
          if (heads[i]) td.dataset.label = heads[i];
          if (td.textContent.trim() === '—') td.dataset.empty = '1';  // nothing to say: not stacked on a phone
        });
      });
      table.dataset.labelled = '1';
    });
    const t = turnOf(chat);
    if (t.count !== lastCount) {
      if (t.count > lastCount) { following = true; asked = Date.now(); pill.hidden = true; clearTimeout(releaseTimer); }
      else { following = false; pill.hidden = true; }
      lastCount = t.count;
    }
    if (following) toTurn(chat, false);
    if (asked && finished(t.answer) && t.count === lastCount) {
      // the answer is complete: follow a moment longer while it settles, then offer the pill if it is out of view
      asked = 0;
      clearTimeout(releaseTimer);
      releaseTimer = setTimeout(() => {
        following = false;
        if (!turnInView(chat)) { placePill(); pill.hidden = false; }
      }, 400);
    }
  };
  window.__pcFollow = () => ({following, pill: !pill.hidden});
  when('#pc-chat', (chat) => {
    new MutationObserver(() => onChat(chat)).observe(chat, {childList: true, subtree: true});
    onChat(chat);  // a conversation restored before this script looked
  });
}
"""
