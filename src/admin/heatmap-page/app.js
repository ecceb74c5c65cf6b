// The heatmap page: reads /api/heatmap every 2 s and draws it with ECharts
// (served by the dispatcher from node_modules, no CDN). Plain browser
// JavaScript, no build step. The response format is in docs/heatmap.md.
//
// Besides the canvas, every cell is written to a table with data-* attributes
// (data-from, data-to, data-count, data-value-ms, data-breach): screen readers
// and the browser test read those. window.zonalHeatmap exposes the state, the
// last response and where each cell is drawn.
'use strict';

(function () {
  var REFRESH_MS = 2000;
  var CHOICES = {
    metric: ['dispatch', 'rtt'],
    rows: ['producer', 'dispatcher'],
    quantile: ['p50', 'p95', 'p99'],
    window: ['1m', '5m', '1h'],
  };
  var WINDOW_LABELS = { '1m': '1 min', '5m': '5 min', '1h': '1 h' };
  var METRIC_LABELS = { dispatch: 'dispatch latency', rtt: 'stream RTT' };

  // Fixed colour steps (ms), so a colour means the same latency on every refresh.
  var PIECES = [
    { lt: 1, color: '#edf8e9', label: '< 1 ms' },
    { gte: 1, lt: 2, color: '#c7e9c0', label: '1–2 ms' },
    { gte: 2, lt: 5, color: '#fff7bc', label: '2–5 ms' },
    { gte: 5, lt: 10, color: '#fee391', label: '5–10 ms' },
    { gte: 10, lt: 25, color: '#fec44f', label: '10–25 ms' },
    { gte: 25, lt: 50, color: '#fe9929', label: '25–50 ms' },
    { gte: 50, lt: 100, color: '#ec7014', label: '50–100 ms' },
    { gte: 100, lt: 250, color: '#cc4c02', label: '100–250 ms' },
    { gte: 250, lt: 1000, color: '#993404', label: '250 ms–1 s' },
    { gte: 1000, color: '#662506', label: '≥ 1 s' },
  ];
  var BREACH_COLOR = '#d7191c';

  var $ = function (id) {
    return document.getElementById(id);
  };

  var state = readStateFromUrl();
  var lastResponse = null;
  var lastOkAtMs = 0;
  var requests = 0;
  var applied = 0;
  var timer = null;
  var inFlight = null;
  var haveCharts = typeof window.echarts !== 'undefined';
  var matrixChart = haveCharts ? window.echarts.init($('matrix')) : null;
  var pairChart = haveCharts ? window.echarts.init($('pair')) : null;
  // Where each drawn cell is: "from\u0000to" -> [column index, row index].
  var cellIndex = {};

  function readStateFromUrl() {
    var params = new URLSearchParams(window.location.search);
    var pick = function (name, fallback) {
      var value = params.get(name);
      return CHOICES[name].indexOf(value) >= 0 ? value : fallback;
    };
    var s = {
      metric: pick('metric', 'dispatch'),
      rows: pick('rows', 'producer'),
      quantile: pick('quantile', 'p99'),
      window: pick('window', '5m'),
      pair: null,
    };
    if (params.get('from') && params.get('to')) s.pair = { from: params.get('from'), to: params.get('to') };
    return s;
  }

  function queryString() {
    var params = new URLSearchParams({ metric: state.metric, rows: state.metric === 'rtt' ? 'dispatcher' : state.rows, quantile: state.quantile, window: state.window });
    if (state.pair) {
      params.set('from', state.pair.from);
      params.set('to', state.pair.to);
    }
    return params.toString();
  }

  function syncControls() {
    $('metric').value = state.metric;
    $('quantile').value = state.quantile;
    $('window').value = state.window;
    // RTT is measured by the dispatcher on its worker streams: its rows are always the dispatcher's zone.
    $('rows').disabled = state.metric === 'rtt';
    $('rows').value = state.metric === 'rtt' ? 'dispatcher' : state.rows;
    $('rows').title = state.metric === 'rtt' ? 'RTT rows are always the dispatcher’s zone' : '';
  }

  function onControlChange(event) {
    var name = event.target.name;
    if (!CHOICES[name] || CHOICES[name].indexOf(event.target.value) < 0) return;
    state[name] = event.target.value;
    syncControls();
    refreshNow();
  }

  function refreshNow() {
    window.history.replaceState(null, '', window.location.pathname + '?' + queryString());
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (inFlight !== null) inFlight.abort();
    void refresh();
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    timer = null;
    if (document.hidden) return schedule();
    var controller = new AbortController();
    inFlight = controller;
    var seq = ++requests;
    try {
      var res = await fetch('api/heatmap?' + queryString(), { signal: controller.signal, cache: 'no-store' });
      var text = await res.text();
      if (!res.ok) throw new Error('HTTP ' + res.status + ': ' + text.trim().slice(0, 200));
      var body = JSON.parse(text);
      if (seq < applied) return; // an older answer arriving late
      applied = seq;
      lastResponse = body;
      lastOkAtMs = Date.now();
      render(body);
    } catch (err) {
      if (controller.signal.aborted) return; // replaced by a newer request
      var since = lastOkAtMs ? '; showing the data of ' + clock(lastOkAtMs) : '';
      setStatus('Refresh failed at ' + clock(Date.now()) + ' (' + (err && err.message ? err.message : String(err)) + ')' + since + '. Retrying every 2 s.', true);
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        schedule();
      }
    }
  }

  function render(body) {
    var samples = body.cells.reduce(function (n, c) {
      return n + c.count;
    }, 0);
    var note = haveCharts ? '' : ' ECharts did not load (the dispatcher answers 503 without it: npm install echarts); the table below still shows every cell.';
    setStatus('Live · updated ' + clock(body.generatedAtMs) + ' · ' + fmtCount(samples) + ' samples in ' + body.cells.length + ' cells · every 2 s.' + note, !haveCharts);
    renderDispatchers(body.dispatchers);
    var rowsLabel = body.rows === 'producer' ? 'producer zone' : 'dispatcher zone';
    $('matrix-heading').textContent = METRIC_LABELS[body.metric] + ' ' + body.quantile + ', ' + rowsLabel + ' → worker zone, last ' + WINDOW_LABELS[body.window];
    var empty = body.cells.length === 0;
    $('empty').hidden = !empty;
    $('matrix').hidden = empty || !haveCharts;
    renderTable(body);
    if (haveCharts && !empty) renderMatrix(body, rowsLabel);
    renderPair(body);
  }

  function renderDispatchers(list) {
    var el = $('dispatchers');
    el.textContent = 'Dispatchers included: ';
    list.forEach(function (d, i) {
      var span = document.createElement('span');
      span.className = 'dispatcher' + (d.self ? ' self' : '');
      span.dataset.testid = 'dispatcher';
      span.dataset.id = d.id;
      span.dataset.zone = d.zone;
      span.textContent = d.id + ' (zone ' + (d.zone || '—') + (d.self ? ', this page’s' : '') + ')';
      if (i > 0) el.appendChild(document.createTextNode(', '));
      el.appendChild(span);
    });
    if (list.length === 1) el.appendChild(document.createTextNode('. Only this dispatcher’s own samples: dispatchers on one PostgreSQL database share theirs.'));
  }

  function cellOf(body, from, to) {
    for (var i = 0; i < body.cells.length; i++) if (body.cells[i].from === from && body.cells[i].to === to) return body.cells[i];
    return null;
  }

  function renderTable(body) {
    var table = $('matrix-table');
    table.textContent = '';
    var head = table.insertRow();
    var corner = document.createElement('th');
    corner.textContent = (body.rows === 'producer' ? 'producer' : 'dispatcher') + ' \\ worker';
    head.appendChild(corner);
    body.columnZones.forEach(function (to) {
      var th = document.createElement('th');
      th.scope = 'col';
      th.textContent = to;
      th.dataset.testid = 'column-zone';
      head.appendChild(th);
    });
    body.rowZones.forEach(function (from) {
      var tr = table.insertRow();
      var th = document.createElement('th');
      th.scope = 'row';
      th.textContent = from;
      th.dataset.testid = 'row-zone';
      tr.appendChild(th);
      body.columnZones.forEach(function (to) {
        var td = tr.insertCell();
        var c = cellOf(body, from, to);
        td.dataset.testid = 'cell';
        td.dataset.from = from;
        td.dataset.to = to;
        td.dataset.count = String(c ? c.count : 0);
        td.dataset.valueMs = c && c.valueMs !== null ? String(c.valueMs) : '';
        td.dataset.thresholdMs = c && c.thresholdMs !== null ? String(c.thresholdMs) : '';
        td.dataset.breach = String(!!(c && c.breach));
        if (!c) {
          td.textContent = '—';
          return;
        }
        var button = document.createElement('button');
        button.type = 'button';
        button.textContent = fmtMs(c.valueMs) + ' · n=' + fmtCount(c.count) + (c.breach ? ' · ! SLO' : '');
        button.addEventListener('click', function () {
          selectPair(from, to);
        });
        if (c.breach) td.className = 'breach';
        td.appendChild(button);
      });
    });
  }

  function pieceIndex(ms) {
    for (var i = 0; i < PIECES.length; i++) {
      var p = PIECES[i];
      if ((p.gte === undefined || ms >= p.gte) && (p.lt === undefined || ms < p.lt)) return i;
    }
    return PIECES.length - 1;
  }

  function renderMatrix(body, rowsLabel) {
    cellIndex = {};
    var data = [];
    body.rowZones.forEach(function (from, y) {
      body.columnZones.forEach(function (to, x) {
        var c = cellOf(body, from, to);
        if (!c || c.valueMs === null) return;
        cellIndex[from + '\u0000' + to] = [x, y];
        var selected = state.pair && state.pair.from === from && state.pair.to === to;
        var item = { value: [x, y, c.valueMs], cell: c, label: { color: pieceIndex(c.valueMs) >= 6 ? '#fff' : '#222' } };
        if (c.breach) item.itemStyle = { borderColor: BREACH_COLOR, borderWidth: 5 };
        else if (selected) item.itemStyle = { borderColor: '#1f4e79', borderWidth: 4 };
        data.push(item);
      });
    });
    matrixChart.resize();
    matrixChart.setOption(
      {
        animation: false,
        tooltip: { formatter: tooltip },
        grid: { left: 110, right: 24, top: 16, bottom: 96 },
        xAxis: { type: 'category', data: body.columnZones, name: 'worker zone', nameLocation: 'middle', nameGap: 28, splitArea: { show: true } },
        yAxis: { type: 'category', data: body.rowZones, inverse: true, name: rowsLabel, nameLocation: 'middle', nameGap: 64, splitArea: { show: true } },
        visualMap: {
          type: 'piecewise',
          dimension: 2,
          pieces: PIECES,
          orient: 'horizontal',
          left: 'center',
          bottom: 4,
          itemGap: 10,
          itemWidth: 16,
          showLabel: true,
        },
        series: [
          {
            type: 'heatmap',
            data: data,
            itemStyle: { borderColor: '#fff', borderWidth: 2 },
            label: {
              show: true,
              fontSize: 13,
              lineHeight: 18,
              formatter: function (p) {
                var c = p.data.cell;
                return '{v|' + fmtMs(c.valueMs) + '}\nn=' + fmtCount(c.count) + (c.breach ? '\n{b|! SLO ' + (c.thresholdMs !== null ? '≤ ' + fmtMs(c.thresholdMs) : '') + '}' : '');
              },
              rich: { v: { fontSize: 16, fontWeight: 'bold' }, b: { color: '#fff', backgroundColor: BREACH_COLOR, padding: [1, 4], borderRadius: 3, fontWeight: 'bold' } },
            },
            emphasis: { itemStyle: { shadowBlur: 8, shadowColor: 'rgba(0,0,0,0.4)' } },
          },
        ],
      },
      { notMerge: true },
    );
  }

  function tooltip(p) {
    var c = p.data && p.data.cell;
    if (!c) return '';
    var lines = [
      '<b>' + esc(c.from) + ' → ' + esc(c.to) + '</b>',
      fmtCount(c.count) + ' samples',
      'p50 ' + fmtMs(c.p50Ms) + ' · p95 ' + fmtMs(c.p95Ms) + ' · p99 ' + fmtMs(c.p99Ms),
    ];
    if (c.thresholdMs !== null) lines.push('SLO: ' + (lastResponse ? lastResponse.quantile : '') + ' ≤ ' + fmtMs(c.thresholdMs) + (c.breach ? ' — <b style="color:' + BREACH_COLOR + '">in breach</b>' : ''));
    else if (c.breach) lines.push('<b style="color:' + BREACH_COLOR + '">SLO in breach</b>');
    lines.push('Click for this pair over time');
    return lines.join('<br>');
  }

  function selectPair(from, to) {
    state.pair = { from: from, to: to };
    refreshNow();
  }

  function renderPair(body) {
    var section = $('pair-section');
    if (!state.pair || !body.pair) {
      section.hidden = true;
      return;
    }
    var pair = body.pair;
    section.hidden = false;
    var rowsLabel = body.rows === 'producer' ? 'producer zone ' : 'dispatcher zone ';
    var heading = $('pair-heading');
    heading.textContent = pair.from + ' → ' + pair.to + ': ' + METRIC_LABELS[body.metric] + ', ' + rowsLabel + pair.from + ' to worker zone ' + pair.to + ', last ' + WINDOW_LABELS[body.window];
    heading.dataset.from = pair.from;
    heading.dataset.to = pair.to;
    var bounds = body.bucketsMs;
    var lo = Infinity;
    var hi = -1;
    var max = 0;
    pair.slots.forEach(function (s) {
      s.counts.forEach(function (n, i) {
        if (n > 0) {
          lo = Math.min(lo, i);
          hi = Math.max(hi, i);
          max = Math.max(max, n);
        }
      });
    });
    $('pair-empty').hidden = hi >= 0;
    $('pair').hidden = hi < 0 || !haveCharts;
    section.dataset.samples = String(
      pair.slots.reduce(function (n, s) {
        return n + s.counts.reduce(function (a, b) { return a + b; }, 0);
      }, 0),
    );
    if (hi < 0 || !haveCharts) return;
    // Only the buckets with samples, and one either side: 23 rows would squash them.
    lo = Math.max(0, lo - 1);
    hi = Math.min(bounds.length, hi + 1);
    // From the first slot with samples (a pair seen only for the last minute of an hour is not a thin strip), at least 1 min.
    var first = 0;
    while (first < pair.slots.length - 6 && pair.slots[first].counts.every(function (n) { return n === 0; })) first++;
    var slots = pair.slots.slice(first);
    var labels = [];
    for (var i = lo; i <= hi; i++) labels.push(i < bounds.length ? '≤ ' + fmtBound(bounds[i]) : '> ' + fmtBound(bounds[bounds.length - 1]));
    var data = [];
    slots.forEach(function (s, x) {
      for (var b = lo; b <= hi; b++) if (s.counts[b] > 0) data.push([x, b - lo, s.counts[b]]);
    });
    pairChart.resize();
    pairChart.setOption(
      {
        animation: false,
        tooltip: {
          formatter: function (p) {
            return clock(slots[p.data[0]].startMs) + ', latency ' + esc(labels[p.data[1]]) + ' ms: ' + fmtCount(p.data[2]) + ' samples';
          },
        },
        grid: { left: 90, right: 24, top: 16, bottom: 96 },
        xAxis: {
          type: 'category',
          data: slots.map(function (s) { return clock(s.startMs); }),
          name: 'time (10 s slots)',
          nameLocation: 'middle',
          nameGap: 28,
        },
        yAxis: { type: 'category', data: labels, name: 'latency (ms)', nameLocation: 'middle', nameGap: 64 },
        visualMap: {
          type: 'continuous',
          min: 0,
          max: Math.max(1, max),
          dimension: 2,
          orient: 'horizontal',
          left: 'center',
          bottom: 4,
          text: [fmtCount(max) + ' samples', '0'],
          inRange: { color: ['#f7fbff', '#6baed6', '#08306b'] },
        },
        series: [{ type: 'heatmap', data: data, itemStyle: { borderColor: '#fff', borderWidth: 1 } }],
      },
      { notMerge: true },
    );
  }

  function setStatus(text, problem) {
    var el = $('status');
    el.textContent = text;
    el.className = problem ? 'problem' : '';
  }

  function clock(ms) {
    var d = new Date(ms);
    var two = function (n) {
      return (n < 10 ? '0' : '') + n;
    };
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }

  function fmtBound(ms) {
    return ms >= 1000 ? ms / 1000 + ' s' : String(ms);
  }

  function fmtCount(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return String(Math.round(n));
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch];
    });
  }

  ['metric', 'rows', 'quantile', 'window'].forEach(function (id) {
    $(id).addEventListener('change', onControlChange);
  });
  $('controls').addEventListener('submit', function (e) {
    e.preventDefault();
  });
  $('pair-close').addEventListener('click', function () {
    state.pair = null;
    refreshNow();
  });
  if (matrixChart) {
    matrixChart.on('click', function (p) {
      if (p.data && p.data.cell) selectPair(p.data.cell.from, p.data.cell.to);
    });
  }
  window.addEventListener('resize', function () {
    if (matrixChart) matrixChart.resize();
    if (pairChart) pairChart.resize();
  });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) refreshNow();
  });

  window.zonalHeatmap = {
    get state() {
      return JSON.parse(JSON.stringify(state));
    },
    get lastResponse() {
      return lastResponse;
    },
    get requests() {
      return requests;
    },
    /** The centre of a drawn cell in viewport coordinates (CSS pixels), or null when it is not drawn. */
    cellCenter: function (from, to) {
      var at = cellIndex[from + '\u0000' + to];
      if (!matrixChart || !at) return null;
      var px = matrixChart.convertToPixel({ seriesIndex: 0 }, at);
      var box = $('matrix').getBoundingClientRect();
      return { x: box.left + px[0], y: box.top + px[1] };
    },
  };

  syncControls();
  refreshNow();
})();
