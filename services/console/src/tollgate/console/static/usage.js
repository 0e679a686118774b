// Usage charts (uPlot). The page carries each chart's columns and translated series
// labels in data attributes; colours come from the theme's CSS variables, and the
// charts are redrawn when the width or the colour scheme changes. No inline scripts.
(() => {
  const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7];
  // Times in UTC (as the page says) and in the page's language, 24-hour clock.
  const lang = document.documentElement.lang || "en";
  const utc = (options) => new Intl.DateTimeFormat(lang, { timeZone: "UTC", hourCycle: "h23", ...options });
  const clock = utc({ hour: "2-digit", minute: "2-digit" });
  const clockSeconds = utc({ hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dayClock = utc({ month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const timeTicks = (u, splits) => {
    const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    const format = span >= 86400 ? dayClock : span < 600 ? clockSeconds : clock;
    return splits.map((ts) => format.format(new Date(ts * 1000)));
  };
  const timeValue = (u, ts) => (ts == null ? "--" : dayClock.format(new Date(ts * 1000)) + " UTC");
  // Latency exists only for minutes/hours with traffic: mark the values when they are
  // few, or a lone one would draw nothing.
  const sparse = (u, i) => u.data[i].filter((v) => v != null).length < 30;
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function options(kind, labels, width) {
    const axis = { stroke: css("--muted"), grid: { stroke: css("--border"), width: 1 }, ticks: { stroke: css("--border") } };
    // Room for the widest label format (day and time past a day's span), so the labels
    // of a 24 h or longer range never overlap.
    const time = { ...axis, values: timeTicks, space: (u, i, min, max) => (max - min >= 3 * 3600 ? 100 : 80) };
    const x = { label: labels.time, value: timeValue };
    const base = { width, height: 220, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"), cursor: { drag: { x: false, y: false } }, legend: { live: true } };
    if (kind === "traffic") {
      return {
        ...base,
        series: [
          x,
          { label: labels.ok, stroke: css("--ok"), width: 2 },
          { label: labels.errors, stroke: css("--bad"), width: 2 },
          { label: labels.rejected, stroke: css("--warn"), width: 2 },
        ],
        // Counts are whole numbers: no 0.25-request ticks.
        axes: [time, { ...axis, size: 50, incrs: WHOLE }],
      };
    }
    return {
      ...base,
      series: [
        x,
        { label: labels.p50, stroke: css("--ok"), width: 2, spanGaps: true, points: { show: sparse } },
        { label: labels.p95, stroke: css("--warn"), width: 2, spanGaps: true, points: { show: sparse } },
        { label: labels.p99, stroke: css("--bad"), width: 2, spanGaps: true, points: { show: sparse } },
      ],
      axes: [time, { ...axis, size: 60, values: (u, ticks) => ticks.map((v) => v + " " + labels.unit) }],
    };
  }

  function columns(kind, s) {
    return kind === "traffic" ? [s.t, s.ok, s.errors, s.rejected] : [s.t, s.p50, s.p95, s.p99];
  }

  const charts = [];

  function draw() {
    for (const chart of charts.splice(0)) chart.destroy();
    for (const box of document.querySelectorAll("[data-chart]")) {
      box.replaceChildren();
      const kind = box.dataset.chart;
      const series = JSON.parse(box.dataset.series);
      const labels = JSON.parse(box.dataset.labels);
      const width = Math.max(box.clientWidth, 200);
      charts.push(new uPlot(options(kind, labels, width), columns(kind, series), box));
    }
  }

  function start() {
    if (typeof uPlot === "undefined" || !document.querySelector("[data-chart]")) return;
    draw();
    let pending;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(draw, 150);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
