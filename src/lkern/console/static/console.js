// The operator console's page. It holds no token: the console server keeps the
// session behind an HttpOnly cookie; this script holds only the CSRF token it
// must echo on every state-changing call. Everything shown is set as text,
// never parsed as HTML, so nothing a service returns can run here.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STATES = { up: "Up", not_ready: "Not ready", down: "Down" };
  const FIGURES = [
    ["outbox_backlog", "Outbox backlog", "Events committed but not yet published to the broker.", count],
    ["outbox_oldest_age_seconds", "Oldest unpublished", "Age of the oldest event waiting in the outbox (0 when none waits).", seconds],
    ["consumer_lag_seconds", "Consumer lag", "Mean time from an event's creation to its handling being committed, since start.", seconds],
    ["dead_lettered", "Dead-lettered", "Events parked after their handler failed every retry, since start.", count],
  ];
  let csrf = null;
  let pollMs = 3000;
  let timer = null;
  let inFlight = false;
  const cards = new Map();

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function count(value) { return value === null || value === undefined ? "—" : String(Math.round(value)); }
  function seconds(value) {
    if (value === null || value === undefined) return "—";
    return value < 10 ? `${value.toFixed(2)} s` : `${Math.round(value)} s`;
  }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch { data = null; }
    }
    if (response.status === 401 && path !== "/session") signedOut(data && data.detail);
    return { status: response.status, ok: response.ok, data };
  }

  function detail(answer, fallback) {
    return (answer.data && (answer.data.detail || answer.data.title)) || `${fallback} (${answer.status})`;
  }

  function notice(text, bad = false) {
    const node = $("notice");
    node.textContent = text;
    node.classList.toggle("bad", bad);
  }

  // Signing in and out.

  function showSignIn(message) {
    csrf = null;
    clearTimeout(timer);
    $("dashboard").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("email").focus();
  }

  function showDashboard(session) {
    csrf = session.csrf_token;
    pollMs = Math.max(1, session.poll_seconds || 3) * 1000;
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("who").hidden = false;
    $("signed-in-as").textContent = `Signed in as ${session.email}`;
    refresh();
  }

  function signedOut(message) {
    cards.clear();
    $("services").replaceChildren();
    showSignIn(message || "");
  }

  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter || $("sign-in-form").querySelector("button");
    button.disabled = true;
    $("sign-in-error").textContent = "";
    try {
      const answer = await api("POST", "/session", { email: $("email").value, password: $("password").value });
      if (answer.ok) {
        $("password").value = "";
        showDashboard(answer.data);
      } else {
        $("sign-in-error").textContent = detail(answer, "Sign-in failed");
      }
    } catch {
      $("sign-in-error").textContent = "The console does not answer.";
    } finally {
      button.disabled = false;
    }
  });

  $("sign-out").addEventListener("click", async () => {
    try { await api("DELETE", "/session"); } finally { signedOut("You are signed out."); }
  });

  // Live refresh: every few seconds while the tab is visible, never two at once.

  function schedule() {
    clearTimeout(timer);
    if (csrf && !document.hidden) timer = setTimeout(refresh, pollMs);
  }

  async function refresh() {
    if (inFlight || !csrf) return;
    inFlight = true;
    try {
      const answer = await api("GET", "/api/overview");
      if (answer.ok) {
        render(answer.data.services);
        $("live").textContent = `Updated ${new Date().toLocaleTimeString()} · every ${pollMs / 1000} s`;
      } else if (answer.status !== 401) {
        notice(detail(answer, "The overview failed"), true);
      }
    } catch {
      $("live").textContent = "The console does not answer; retrying";
    } finally {
      inFlight = false;
      schedule();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      $("live").textContent = "Paused while the tab is hidden";
    } else {
      refresh();
    }
  });

  // Rendering. Rows are rebuilt each time; the focused control is found again by its key.

  function render(services) {
    const focused = document.activeElement && document.activeElement.dataset.key;
    const grid = $("services");
    for (const service of services) {
      let card = cards.get(service.name);
      if (!card) {
        card = makeCard(service.name);
        cards.set(service.name, card);
        grid.append(card.root);
      }
      updateCard(card, service);
    }
    renderDeadLetters(services);
    renderPending(services);
    renderAudits(services);
    if (focused) {
      const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again && again !== document.activeElement) again.focus();
    }
  }

  function makeCard(name) {
    const id = `level-${name}`;
    const select = el("select", { id, "data-key": id });
    const output = el("output", { for: id, "aria-live": "polite" });
    const level = el("div", { className: "level" },
      el("label", { for: id, text: "Log level" }), select, output);
    select.setAttribute("aria-label", `Log level of ${name}`);
    select.addEventListener("change", () => changeLevel(name, select, output));
    const body = el("div", { className: "card-body" });
    const root = el("article", { className: "card", "data-service": name, "aria-label": name },
      body, level);
    return { root, body, select, output, level, busy: false, shown: null };
  }

  function updateCard(card, service) {
    const state = service.state;
    card.root.className = `card ${state}`;
    card.root.dataset.state = state;
    const head = el("div", { className: "card-head" },
      el("h3", { text: service.name }),
      el("span", { className: `state ${state}`, text: STATES[state] || state, title: stateHint(service) }));
    const parts = [head, el("div", { className: "version", text: service.version ? `version ${service.version}` : service.url })];
    if (state === "down") {
      parts.push(el("p", { className: "problem", text: `Does not answer: ${service.error}` }));
    } else {
      parts.push(checks(service.readiness));
      parts.push(figures(service));
    }
    card.body.replaceChildren(...parts);
    card.level.hidden = state === "down";
    const level = service.log_level;
    if (level && level.ok && !card.busy && document.activeElement !== card.select) {
      const wanted = level.body.valid_levels.join(",");
      if (card.shown !== wanted) {
        card.select.replaceChildren(...level.body.valid_levels.map((v) => el("option", { value: v, text: v })));
        card.shown = wanted;
      }
      card.select.value = level.body.level;
      card.select.dataset.current = level.body.level;
    }
  }

  function stateHint(service) {
    if (service.state === "up") return "Answers; every readiness check passes.";
    if (service.state === "down") return "Does not answer its /health route.";
    return "Answers, but a readiness check fails (named below).";
  }

  function checks(readiness) {
    if (!readiness || !readiness.ok) {
      return el("p", { className: "problem", text: `Readiness unknown: ${(readiness && readiness.error) || "no answer"}` });
    }
    const list = el("ul", { className: "checks", "aria-label": "Readiness checks" });
    for (const [name, result] of Object.entries(readiness.body.checks || {})) {
      const ok = result === "ok";
      list.append(el("li", { className: ok ? "ok" : "failed", "data-check": name, text: ok ? `✓ ${name}` : `✗ ${name}: ${result}` }));
    }
    return list;
  }

  function figures(service) {
    const list = el("dl", { className: "figures" });
    const metrics = service.metrics;
    if (!metrics || !metrics.ok) {
      list.append(el("dt", { text: "Metrics" }), el("dd", { text: "unavailable" }));
      return list;
    }
    const consumes = service.dead_letters && !service.dead_letters.absent;
    for (const [key, label, hint, format] of FIGURES) {
      let value = metrics.body[key];
      if (key === "dead_lettered" || key === "consumer_lag_seconds") {
        if (!consumes) continue;
      }
      if (key === "dead_lettered" && value === null) value = 0;
      list.append(el("dt", { title: hint, text: label }), el("dd", { "data-figure": key, title: hint, text: format(value) }));
    }
    return list;
  }

  async function changeLevel(name, select, output) {
    const card = cards.get(name);
    const level = select.value;
    card.busy = true;
    output.classList.remove("bad");
    output.textContent = "Saving…";
    try {
      const answer = await api("PUT", `/api/services/${encodeURIComponent(name)}/log-level`, { level });
      if (answer.ok) {
        select.value = answer.data.level;
        select.dataset.current = answer.data.level;
        output.textContent = `Set to ${answer.data.level}`;
      } else {
        select.value = select.dataset.current || select.value;
        output.classList.add("bad");
        output.textContent = detail(answer, "Not changed");
      }
    } catch {
      select.value = select.dataset.current || select.value;
      output.classList.add("bad");
      output.textContent = "Not changed: the console does not answer";
    } finally {
      card.busy = false;
    }
  }

  function rows(services, part) {
    const found = [];
    const missing = [];
    for (const service of services) {
      const value = service[part];
      if (service.state === "down") continue;
      if (!value || value.absent) continue;
      if (!value.ok) missing.push(`${service.name}: ${value.error}`);
      else for (const item of value.body.items || []) found.push([service.name, item]);
    }
    return { found, missing };
  }

  function fill(table, columns, listed, empty, makeRow) {
    const body = $(table).querySelector("tbody");
    const made = listed.found.map(([service, item]) => makeRow(service, item));
    for (const why of listed.missing) {
      made.push(el("tr", {}, el("td", { className: "problem", colspan: columns, text: `Not available from ${why}` })));
    }
    if (!made.length) made.push(el("tr", {}, el("td", { className: "empty", colspan: columns, text: empty })));
    body.replaceChildren(...made);
  }

  function cell(label, text, className) {
    return el("td", { "data-label": label, className, text: text === null || text === undefined ? "—" : String(text) });
  }

  function actionCell(label, key, onClick) {
    const button = el("button", { type: "button", "data-key": key, "aria-label": label, text: label.split(" ")[0] });
    button.addEventListener("click", () => onClick(button));
    return el("td", {}, button);
  }

  function renderDeadLetters(services) {
    fill("dead-letters", 6, rows(services, "dead_letters"), "No dead letters.", (service, letter) =>
      el("tr", { "data-id": letter.id },
        cell("Service", service),
        cell("Event", letter.event_type || letter.topic),
        cell("Error", letter.error, "error-text"),
        cell("Attempts", letter.attempts),
        cell("Failed at", when(letter.failed_at)),
        actionCell(`Replay ${letter.event_type || letter.topic} ${letter.id} of ${service}`, `replay-${letter.id}`,
          (button) => act(button, `/api/services/${encodeURIComponent(service)}/dead-letters/${letter.id}/replay`,
            (data) => `${service}: dead letter ${letter.id} replayed: ${data.result}`))));
  }

  function files(audit) {
    return `${audit.files_deleted}/${audit.files_found}${audit.files_failed ? `, ${audit.files_failed} failed` : ""}`;
  }

  function renderPending(services) {
    fill("pending-deletions", 7, rows(services, "pending_deletions"), "No deletion waits for storage.", (service, audit) =>
      el("tr", { "data-id": audit.id },
        cell("Service", service),
        cell("Item", audit.item_code || `${audit.item_type} ${audit.item_id}`),
        cell("Status", audit.status),
        cell("Files", files(audit)),
        cell("Retries", audit.retry_count),
        cell("Error", audit.error_message, "error-text"),
        actionCell(`Retry deletion ${audit.item_code || audit.item_id} of ${service}`, `retry-${audit.id}`,
          (button) => act(button, `/api/services/${encodeURIComponent(service)}/deletions/${audit.id}/retry`,
            (data) => `${service}: deletion of ${audit.item_code || audit.item_id} ${data.status}`))));
  }

  function renderAudits(services) {
    const listed = rows(services, "audits");
    listed.found.sort((a, b) => (b[1].started_at || "").localeCompare(a[1].started_at || ""));
    fill("audits", 6, listed, "No permanent deletion yet.", (service, audit) =>
      el("tr", { "data-id": audit.id },
        cell("Service", service),
        cell("Item", audit.item_code || `${audit.item_type} ${audit.item_id}`),
        cell("Status", audit.status),
        cell("Files", files(audit)),
        cell("Started", when(audit.started_at)),
        cell("Completed", when(audit.completed_at))));
  }

  async function act(button, path, describe) {
    button.disabled = true;
    try {
      const answer = await api("POST", path);
      if (answer.ok) notice(describe(answer.data));
      else notice(detail(answer, "Failed"), true);
    } catch {
      notice("The console does not answer.", true);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  // Start: signed in already (a reload), or not.
  api("GET", "/session").then((answer) => {
    if (answer.ok && answer.data.signed_in) showDashboard(answer.data);
    else showSignIn();
  }).catch(() => showSignIn("The console does not answer."));
})();
