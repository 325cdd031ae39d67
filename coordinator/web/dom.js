// Tiny DOM builders for the dashboard: h() for HTML, svg() for SVG. No framework: a view
// is a function that returns fresh nodes, and app.js swaps them in. Attributes are set
// with setAttribute (never innerHTML), so REST text is always shown as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'style') {
      // CSSOM, not the style attribute: the page's CSP allows no inline styles
      for (const [p, val] of Object.entries(v)) el.style.setProperty(p, String(val));
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// h('a', {href: '#/x', class: 'link'}, 'text', child, [more]) -> HTMLElement
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// svg('rect', {x: 1, y: 2}) -> SVGElement
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// A definition list of [label, value] rows, value any h() child.
export function facts(rows, cls) {
  return h('dl', {class: ['facts', cls]},
    rows.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

// A table: columns [{title, cls?, key?}] (key: the cells' data-col), rows of cells (each
// any h() child), or rows {attrs, cells}.
export function table(columns, rows, opts = {}) {
  return h('table', {class: ['grid', opts.cls], 'data-testid': opts.testid},
    h('thead', null, h('tr', null, columns.map((c) => h('th', {class: c.cls}, c.title)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', r.attrs || null,
      (r.cells || r).map((cell, i) => h('td', {class: columns[i] && columns[i].cls, 'data-col': columns[i] && columns[i].key}, cell)))) :
      h('tr', null, h('td', {class: 'empty', colspan: columns.length}, opts.empty || 'nothing yet'))));
}

export function section(title, ...body) {
  return h('section', {class: 'card'}, title ? h('h2', null, title) : null, body);
}
