// Keeps the checkout page's status live: renders the order view embedded in the page, then
// every view the order's event stream sends, and counts down to expiry. No reloads. Offers
// the browser wallets the page finds (EIP-6963, else window.ethereum) to pay what remains, by a
// transfer or, where the token takes EIP-3009 authorizations, without gas (the wallet signs,
// paywatch's relayer sends).
(function () {
  "use strict";
  var order = JSON.parse(document.getElementById("order-state").textContent);
  var statusEl = document.getElementById("status");
  var detailEl = document.getElementById("detail");
  var countdownEl = document.getElementById("countdown");
  var chosenChain = null;

  function chosen() {
    var options = order.options || [];
    for (var i = 0; i < options.length; i++) {
      if (options[i].chain_id === chosenChain) { return options[i]; }
    }
    return options[0] || null;
  }
  // The option on the chosen network whose token takes signed authorizations, if any.
  function gaslessOption() {
    var o = chosen();
    var options = order.options || [];
    for (var i = 0; i < options.length; i++) {
      if (options[i].gasless && (!o || options[i].chain_id === o.chain_id)) { return options[i]; }
    }
    return null;
  }
  function unit() {
    var o = chosen();
    return o ? o.symbol : (order.token ? order.pay_method.split("_")[0] : "USD");
  }

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
        detail = view.overpaid !== "0" ? "Overpaid by " + view.overpaid + " " + unit() + "." : "Thank you.";
        break;
      case "partially_paid":
        text = "Partially paid";
        detail = view.confirmed + " " + unit() + " received; " + view.remaining + " " + unit() + " still to send.";
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
      ["networks", "wallet-buttons"].forEach(function (id) {
        var el = document.getElementById(id);
        if (el) { el.remove(); }
      });
    }
    // What remains follows each payment, on every network offered.
    if (document.getElementById("amount") && chosen()) { show(chosen()); }
    if (typeof showGasless === "function") { showGasless(); }
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

  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copyFrom);
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
      var select = function () {
        var range = document.createRange();
        range.selectNodeContents(source);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.textContent).then(done, select);
      } else {
        select();
      }
    });
  });

  // The chosen network's QR code, amount, token, name and wallet link.
  function show(o) {
    document.querySelectorAll(".qr[data-chain-id]").forEach(function (qr) {
      qr.hidden = qr.dataset.chainId !== String(o.chain_id);
    });
    document.getElementById("amount").textContent = o.value;
    document.getElementById("unit").textContent = o.symbol;
    document.getElementById("network").textContent = o.network;
    document.getElementById("token").textContent = o.token;
    document.getElementById("wallet-link").href = o.link;
  }
  document.querySelectorAll("input[name=network]").forEach(function (input) {
    if (input.checked) { chosenChain = Number(input.value); }
    input.addEventListener("change", function () {
      if (input.checked) { chosenChain = Number(input.value); show(chosen()); showGasless(); }
    });
  });

  // Browser wallets. EIP-6963 wallets announce themselves (now and whenever asked); an older
  // one only sets window.ethereum (EIP-1193).
  var wallets = [];
  var walletBox = document.getElementById("wallet");
  var buttons = document.getElementById("wallet-buttons");
  var messageEl = document.getElementById("wallet-message");
  var txEl = document.getElementById("wallet-tx");
  var busy = false;

  function say(text, kind) {
    messageEl.textContent = text;
    messageEl.dataset.kind = kind || "";
  }

  function offer(info, provider) {
    if (!walletBox || !buttons || wallets.some(function (w) { return w.provider === provider; })) { return; }
    if (order.status !== "awaiting_payment" && order.status !== "partially_paid") { return; }
    wallets.push({ info: info, provider: provider });
    var button = document.createElement("button");
    button.type = "button";
    button.className = "pay-with-wallet";
    if (info.icon && /^data:image\//.test(info.icon)) {
      var img = document.createElement("img");
      img.src = info.icon;
      img.alt = "";
      button.appendChild(img);
    }
    button.appendChild(document.createTextNode("Pay with " + (info.name || "browser wallet")));
    button.addEventListener("click", function () { pay(provider, button); });
    buttons.appendChild(button);
    var gasless = document.createElement("button");
    gasless.type = "button";
    gasless.className = "pay-without-gas";
    gasless.textContent = "Pay without gas with " + (info.name || "browser wallet");
    gasless.title = "Your wallet signs; the fee is paid for you.";
    gasless.addEventListener("click", function () { payWithoutGas(provider, button); });
    buttons.appendChild(gasless);
    showGasless();
    walletBox.hidden = false;
  }
  // "Pay without gas" only where the chosen network's token takes signed authorizations.
  function showGasless() {
    if (!buttons) { return; }
    var g = gaslessOption();
    buttons.querySelectorAll("button.pay-without-gas").forEach(function (b) { b.hidden = !g; });
  }
  window.addEventListener("eip6963:announceProvider", function (e) {
    if (e.detail && e.detail.provider && typeof e.detail.provider.request === "function") {
      offer(e.detail.info || {}, e.detail.provider);
    }
  });
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  // Give announcements a moment before settling for window.ethereum.
  setTimeout(function () {
    if (wallets.length === 0 && window.ethereum && typeof window.ethereum.request === "function") {
      offer({ name: "browser wallet" }, window.ethereum);
    }
  }, 300);

  function hex(n) { return "0x" + BigInt(n).toString(16); }
  function word(hexText) { return hexText.replace(/^0x/, "").padStart(64, "0"); }

  // What each wallet error means to the payer; the page stays usable.
  function explain(e, o) {
    var code = e && e.code;
    if (code === 4001) { return "You declined in your wallet. Nothing was sent."; }
    if (code === 4100) { return "Your wallet did not let this page use the account. Unlock it or allow this site, then try again."; }
    if (code === -32002) { return "Your wallet already has a request open: look at your wallet."; }
    if (code === 4900 || code === 4901) { return "Your wallet is not connected to " + o.network + ". Connect it, then try again."; }
    var text = (e && e.message) || String(e);
    if (/insufficient/i.test(text)) { return "Your wallet does not hold enough to pay (the token, or " + o.native_symbol + " for the fee). Nothing was sent."; }
    return "Your wallet answered: " + text + ". Nothing was sent.";
  }

  async function onNetwork(provider, o) {
    var want = hex(o.chain_id);
    var now = await provider.request({ method: "eth_chainId" });
    if (String(now).toLowerCase() === want) { return true; }
    say("Switch your wallet to " + o.network + " in its window…", "wait");
    try {
      await provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: want }] });
    } catch (e) {
      if (e && e.code === 4902) {
        if (!o.wallet_rpc) {
          say("Your wallet does not know " + o.network + " (chain " + o.chain_id + "). Add the network to your wallet, then try again. Nothing was sent.", "error");
          return false;
        }
        say("Add " + o.network + " to your wallet in its window…", "wait");
        var network = { chainId: want, chainName: o.network, rpcUrls: [o.wallet_rpc],
          nativeCurrency: { name: o.native_symbol, symbol: o.native_symbol, decimals: 18 } };
        if (o.explorer) { network.blockExplorerUrls = [o.explorer]; }
        await provider.request({ method: "wallet_addEthereumChain", params: [network] });
        await provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: want }] });
      } else {
        throw e;
      }
    }
    var after = await provider.request({ method: "eth_chainId" });
    if (String(after).toLowerCase() !== want) {
      say("Your wallet is still on another network. Switch it to " + o.network + ", then try again. Nothing was sent.", "error");
      return false;
    }
    return true;
  }

  // The wallet's account, on the option's network, holding what remains; null (the payer told
  // why) when not. `current` reads the option again: what remains may change while it asks.
  async function accountFor(provider, o, current) {
    say("Waiting for the wallet: allow this page to see your account…", "wait");
    var accounts = await provider.request({ method: "eth_requestAccounts" });
    if (!accounts || accounts.length === 0) {
      say("Your wallet shared no account. Unlock it, then try again. Nothing was sent.", "error");
      return null;
    }
    var from = accounts[0];
    if (!(await onNetwork(provider, o))) { return null; }
    o = current();
    var balance = await provider.request({ method: "eth_call", params: [{ to: o.token, data: "0x70a08231" + word(from) }, "latest"] });
    if (BigInt(balance) < BigInt(o.amount_base)) {
      say("This account holds less than " + o.value + " " + o.symbol + " on " + o.network + ". Nothing was sent.", "error");
      return null;
    }
    return { from: from, option: o };
  }

  async function pay(provider, button) {
    var o = chosen();
    if (busy || !o) { return; }
    busy = true;
    buttons.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    txEl.textContent = "";
    try {
      var ready = await accountFor(provider, o, chosen);
      if (!ready) { return; }
      var from = ready.from;
      o = ready.option;
      say("Waiting for the wallet: confirm sending " + o.value + " " + o.symbol + " on " + o.network + "…", "wait");
      var data = "0xa9059cbb" + word(order.address) + word(hex(o.amount_base));
      var hash = await provider.request({ method: "eth_sendTransaction", params: [{ from: from, to: o.token, data: data }] });
      say("Sent. The status below follows it on the chain.", "");
      showHash(hash, o);
    } catch (e) {
      say(explain(e, o), "error");
    } finally {
      busy = false;
      buttons.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    }
  }

  // Reads a string constant of the token (name(), version()) through the wallet.
  async function readString(provider, token, selector) {
    var raw = String(await provider.request({ method: "eth_call", params: [{ to: token, data: selector }, "latest"] }));
    var body = raw.replace(/^0x/, "");
    var length = parseInt(body.slice(64, 128), 16);
    var bytes = body.slice(128, 128 + length * 2).match(/../g) || [];
    return new TextDecoder().decode(new Uint8Array(bytes.map(function (b) { return parseInt(b, 16); })));
  }

  function randomNonce() {
    var bytes = new Uint8Array(32);
    window.crypto.getRandomValues(bytes);
    return "0x" + Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function showHash(hash, o) {
    txEl.textContent = "Transaction ";
    var code = document.createElement("code");
    code.id = "wallet-tx-hash";
    code.textContent = hash;
    if (o.explorer) {
      var link = document.createElement("a");
      link.href = o.explorer.replace(/\/$/, "") + "/tx/" + hash;
      link.rel = "noopener";
      link.appendChild(code);
      txEl.appendChild(link);
    } else {
      txEl.appendChild(code);
    }
  }

  // The wallet signs a TransferWithAuthorization (EIP-712) of what remains to the order's
  // address; paywatch checks it and its relayer sends it. A wallet that cannot sign typed data
  // gets the usual transfer instead.
  async function payWithoutGas(provider, transferButton) {
    var o = gaslessOption();
    if (busy || !o) { return; }
    busy = true;
    buttons.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    txEl.textContent = "";
    var fallBack = false;
    try {
      var ready = await accountFor(provider, o, function () { return gaslessOption() || o; });
      if (!ready) { return; }
      var from = ready.from;
      o = ready.option;
      var name = await readString(provider, o.token, "0x06fdde03");
      var version = await readString(provider, o.token, "0x54fd4d50");
      var now = Math.floor(Date.now() / 1000);
      var message = {
        from: from, to: order.address, value: o.amount_base, validAfter: "0",
        validBefore: String(Math.min(order.expires_at, now + 3600)), nonce: randomNonce()
      };
      var typed = {
        types: {
          EIP712Domain: [{ name: "name", type: "string" }, { name: "version", type: "string" },
            { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" }],
          TransferWithAuthorization: [{ name: "from", type: "address" }, { name: "to", type: "address" },
            { name: "value", type: "uint256" }, { name: "validAfter", type: "uint256" },
            { name: "validBefore", type: "uint256" }, { name: "nonce", type: "bytes32" }]
        },
        primaryType: "TransferWithAuthorization",
        domain: { name: name, version: version, chainId: o.chain_id, verifyingContract: o.token },
        message: message
      };
      say("Waiting for the wallet: sign paying " + o.value + " " + o.symbol + " on " + o.network + " (no fee for you)…", "wait");
      var signature;
      try {
        signature = await provider.request({ method: "eth_signTypedData_v4", params: [from, JSON.stringify(typed)] });
      } catch (e) {
        if (e && (e.code === 4200 || e.code === -32601)) { fallBack = true; return; }
        throw e;
      }
      say("Signed. Sending it for you…", "wait");
      var answer = await fetch("/pay/" + encodeURIComponent(order.order_id) + "/authorization", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ chain_id: o.chain_id, token: o.token, authorization: message, signature: signature })
      });
      var body = await answer.json().catch(function () { return {}; });
      if (!answer.ok) {
        say("The payment was refused: " + (body.message || answer.status) + ". Nothing was sent.", "error");
        return;
      }
      say("Sent without gas. The status below follows it on the chain.", "");
      showHash(body.tx_hash, o);
    } catch (e) {
      say(explain(e, o), "error");
    } finally {
      busy = false;
      buttons.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      if (fallBack) {
        say("Your wallet cannot sign this; paying with a usual transfer instead…", "wait");
        pay(provider, transferButton);
      }
    }
  }

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
