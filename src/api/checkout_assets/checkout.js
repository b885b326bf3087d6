// Keeps the checkout page's status live: renders the order view embedded in the page, then
// every view the order's event stream sends, and counts down to expiry. No reloads.
(function () {
  "use strict";
  var order = JSON.parse(document.getElementById("order-state").textContent);
  var statusEl = document.getElementById("status");
  var detailEl = document.getElementById("detail");
  var countdownEl = document.getElementById("countdown");
  var unit = order.token ? order.pay_method.split("_")[0] : "USD";

  function deepest(view) {
    return view.payments.filter(function (p) { return p.counted; })
      .reduce(function (max, p) { return Math.max(max, p.confirmations); }, 0);
  }

  function render(view) {
    order = view;
    var pending = view.payments.filter(function (p) { return p.counted && p.state === "seen"; });
    var text, detail = "";
    switch (view.status) {
      case "paid":
        text = view.late ? "Paid (after the order expired)" : "Paid";
        detail = view.overpaid !== "0" ? "Overpaid by " + view.overpaid + " " + unit + "." : "Thank you.";
        break;
      case "partially_paid":
        text = "Partially paid";
        detail = view.confirmed + " " + unit + " received; " + view.remaining + " " + unit + " still to send.";
        break;
      case "expired":
        text = "Expired";
        detail = "This order can no longer be paid. Create a new one.";
        break;
      default:
        if (pending.length > 0) {
          text = "Payment seen";
          detail = deepest(view) + " of " + view.confirmations_required + " confirmations";
        } else {
          text = "Waiting for payment";
        }
    }
    if (view.status !== "paid" && pending.length > 0 && view.status !== "awaiting_payment") {
      detail += " A payment is confirming: " + deepest(view) + " of " + view.confirmations_required + ".";
    }
    // A closed order shows no payment instructions, even if the page was opened while open.
    var deposit = document.querySelector(".deposit");
    if (deposit && (view.status === "paid" || view.status === "expired") && !deposit.classList.contains("closed")) {
      deposit.classList.add("closed");
      deposit.innerHTML = "";
      var note = document.createElement("p");
      note.className = "closed-note";
      note.textContent = view.status === "paid" ? "This order is paid. Nothing more to send."
        : "This order has expired: do not send money to its address. Create a new order.";
      deposit.appendChild(note);
    }
    // What remains follows each payment, on every network offered (one network: the amount
    // and wallet link of the page itself; its QR code is redrawn when the page is reloaded).
    if (!document.querySelector("input[name=network]") && view.payment_uri && view.remaining !== "0") {
      var amountEl = document.getElementById("amount"), linkEl = document.getElementById("wallet-link");
      if (amountEl) { amountEl.textContent = view.remaining; }
      if (linkEl) { linkEl.href = view.payment_uri; }
    }
    (view.options || []).forEach(function (o) {
      var input = document.querySelector("input[name=network][value='" + o.chain_id + "']");
      if (input) {
        input.dataset.value = o.value;
        input.dataset.uri = o.payment_uri;
        if (input.checked) { choose(input); }
      }
    });
    statusEl.textContent = text;
    statusEl.dataset.status = view.late && view.status === "paid" ? "paid" : view.status;
    detailEl.textContent = detail;
    tick();
  }

  function tick() {
    if (order.status === "paid" || order.status === "expired") {
      countdownEl.textContent = "";
      return;
    }
    var left = order.expires_at - Math.floor(Date.now() / 1000);
    if (left <= 0) {
      countdownEl.textContent = "Time is up: payments arriving now may not be accepted.";
      return;
    }
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    countdownEl.textContent = "Expires in " + (h > 0 ? h + ":" + pad(m) : m) + ":" + pad(s);
  }

  var copy = document.getElementById("copy");
  if (copy) {
    copy.addEventListener("click", function () {
      var value = copy.dataset.copy;
      var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(done, function () { select(); });
      } else {
        select();
      }
      function select() {
        var range = document.createRange();
        range.selectNodeContents(document.getElementById("address"));
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the address stays selected */ }
      }
    });
  }

  // Several networks: the QR code, amount, token and wallet link follow the choice.
  function choose(input) {
    document.querySelectorAll(".qr[data-chain-id]").forEach(function (qr) {
      qr.hidden = qr.dataset.chainId !== input.value;
    });
    document.getElementById("amount").textContent = input.dataset.value;
    document.getElementById("chain").textContent = input.value;
    document.getElementById("token").textContent = input.dataset.token;
    document.getElementById("wallet-link").href = input.dataset.uri;
  }
  document.querySelectorAll("input[name=network]").forEach(function (input) {
    input.addEventListener("change", function () { if (input.checked) { choose(input); } });
  });

  render(order);
  setInterval(tick, 1000);
  if (window.EventSource) {
    // EventSource reconnects by itself and sends Last-Event-ID, so no change is missed.
    var source = new EventSource("/pay/" + encodeURIComponent(order.order_id) + "/events");
    var names = ["awaiting_payment", "seen", "confirmations", "partially_paid", "paid", "paid_late", "expired", "reorged", "updated"];
    names.forEach(function (name) {
      source.addEventListener(name, function (e) { render(JSON.parse(e.data)); });
    });
  }
})();
