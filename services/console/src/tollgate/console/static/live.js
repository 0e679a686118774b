// Live tail: an EventSource on the console's own stream URL (the console relays usage's
// server-sent events with the user's token, which page JavaScript never sees), drawn
// with uPlot. No inline scripts.
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
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function start() {
    const box = document.querySelector("[data-live-src]");
    if (!box || typeof uPlot === "undefined") return;
    const labels = JSON.parse(box.dataset.labels);
    const state = document.querySelector("[data-live-state]");
    const stateLabels = JSON.parse(state.dataset.labels);
    const show = (name) => {
      state.textContent = stateLabels[name];
      state.className = "badge " + (name === "live" ? "active" : "disabled");
      state.dataset.state = name;
    };
    let data = [[], [], [], []];
    let chart;
    const make = () => {
      const axis = { stroke: css("--muted"), grid: { stroke: css("--border"), width: 1 }, ticks: { stroke: css("--border") } };
      if (chart) chart.destroy();
      box.replaceChildren();
      chart = new uPlot({
        width: Math.max(box.clientWidth, 200),
        height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        cursor: { drag: { x: false, y: false } },
        scales: { y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        series: [
          { label: labels.time, value: timeValue },
          { label: labels.requests, stroke: css("--accent"), width: 2 },
          { label: labels.errors, stroke: css("--bad"), width: 2 },
          { label: labels.rejected, stroke: css("--warn"), width: 2 },
        ],
        // Whole seconds on x, whole requests on y.
        axes: [{ ...axis, space: 80, incrs: [1, 2, 5, 10, 15, 30, 60], values: timeTicks }, { ...axis, size: 40, incrs: WHOLE }],
      }, data, box);
    };
    make();
    let pending;
    window.addEventListener("resize", () => { clearTimeout(pending); pending = setTimeout(make, 150); });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", make);

    let source;
    const onCounts = (event) => {
      show("live");
      const seconds = JSON.parse(event.data).seconds;
      data = [
        seconds.map((s) => Date.parse(s.second) / 1000),
        seconds.map((s) => s.requests),
        seconds.map((s) => s.errors),
        seconds.map((s) => s.rejected),
      ];
      chart.setData(data);
    };
    const connect = () => {
      source = new EventSource(box.dataset.liveSrc);
      source.addEventListener("open", () => show("live"));
      source.addEventListener("counts", onCounts);
      source.addEventListener("error", () => {
        show("retrying");
        // A refusal (too many streams, usage down) closes the source for good: retry later.
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
      });
    };
    connect();
    window.addEventListener("pagehide", () => source.close());
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
