// The pages' side of the components on the person's computer: the local card component
// (HiPKI-style signing server) and NHI's health-card component. Used by the login page, the
// card binding in 我的專區, and the environment check (環境檢測).
var IdpComponents = (function () {
  "use strict";

  // Chrome asks the person before a site reaches their own computer (Local Network Access);
  // "denied" means they refused, "prompt" that the request will wait for their answer.
  function localAccess() {
    if (!navigator.permissions || !navigator.permissions.query) { return Promise.resolve("unknown"); }
    return navigator.permissions.query({ name: "local-network-access" })
      .then(function (s) { return s.state; }, function () { return "unknown"; });
  }

  // How long to wait for a component: short, unless the browser is asking the person first.
  function patience(access, ms) { return access === "prompt" ? 60000 : ms; }

  // The card component's status, read as government pages read it: `/p11Image.bmp` is its
  // `/pkcs11info` answer carried in the pixels of an image (three bytes a pixel, ended by a
  // pixel whose first byte is 0), which a page may draw and read back where a fetch of the
  // JSON would be refused for lack of CORS. Resolves to {state, info}: "ok", "fail" (no
  // answer), "untrusted" (the component does not trust this site), "error", "denied".
  function probeCard(origin, ms) {
    return localAccess().then(function (access) {
      if (access === "denied") { return { state: "denied" }; }
      return new Promise(function (resolve) {
        var img = new Image();
        var done = false;
        var timer = setTimeout(function () { finish({ state: "fail" }); }, patience(access, ms));
        function finish(r) {
          if (done) { return; }
          done = true;
          clearTimeout(timer);
          img.onload = img.onerror = null;
          resolve(r);
        }
        img.crossOrigin = "anonymous";
        img.onload = function () {
          try {
            var w = img.naturalWidth;
            var canvas = document.createElement("canvas");
            canvas.width = w;
            canvas.height = 1;
            var ctx = canvas.getContext("2d");
            ctx.drawImage(img, 0, 0);
            var px = ctx.getImageData(0, 0, w, 1).data;
            var bytes = [];
            for (var i = 0; i < w; i++) {
              if (px[4 * i + 2] === 0) { break; }
              bytes.push(px[4 * i + 2], px[4 * i + 1], px[4 * i]);
            }
            var info = JSON.parse(new TextDecoder("utf-8").decode(new Uint8Array(bytes)).replace(/\u0000+$/, ""));
            if (info.ret_code === 0x76000031) { finish({ state: "untrusted", info: info }); return; }
            finish({ state: info.ret_code === 0 ? "ok" : "error", info: info });
          } catch (e) {
            finish({ state: "error" });
          }
        };
        img.onerror = function () { finish({ state: "fail" }); };
        img.src = origin + "/p11Image.bmp?" + Date.now();
      });
    });
  }

  // The reader and card in a card component's answer: "no-reader", "no-card", or "ok" with them.
  function cardOf(info) {
    var slots = (info && info.slots) || [];
    if (!slots.length) { return { state: "no-reader" }; }
    for (var i = 0; i < slots.length; i++) {
      if (slots[i].token && typeof slots[i].token === "object") {
        return { state: "ok", reader: slots[i].slotDescription || "", card: slots[i].token.serialNumber || "" };
      }
    }
    return { state: "no-card", reader: slots[0].slotDescription || "" };
  }

  // NHI's component: asks it for a card token (what health-card sign-in posts). Resolves to
  // {state, token}: "ok" with the token, "no-card" (it answers without one), "fail", "denied".
  function probeHealth(origin, ms) {
    return localAccess().then(function (access) {
      if (access === "denied") { return { state: "denied" }; }
      var abort = new AbortController();
      var timer = setTimeout(function () { abort.abort(); }, patience(access, ms));
      return fetch(origin + "/token", { signal: abort.signal, cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (answer) {
          return answer.card_token ? { state: "ok", token: answer.card_token } : { state: "no-card" };
        }, function () { return { state: "fail" }; })
        .then(function (r) { clearTimeout(timer); return r; });
    });
  }

  // Shows the message for `state` inside a `.check` element (the stylesheet shows only the
  // children marked `when-<state>`; the wording is on the page, in its language).
  function show(el, state) { if (el) { el.setAttribute("data-state", state); } }

  return { probeCard: probeCard, cardOf: cardOf, probeHealth: probeHealth, show: show };
})();

// Card sign-in (and binding) through the local card component. The PIN goes only to the
// component; this page posts back the signature of a fresh, single-use server challenge.
// Before the component's popup is opened, its presence is checked (a short wait), so a missing
// component, reader or card is explained here instead of a popup that cannot load. Protocol of
// the popup: it says {"func":"getTbs"} when ready, we answer with the tbsPackage, it answers
// {"func":"sign", ret_code, signature, ...}.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  var button = document.getElementById("card-login");
  if (!form || !button) { return; }
  var component = form.getAttribute("data-component");
  var status = document.getElementById("card-status");

  function sign(pin) {
    var tx = form.querySelector("[name=tx]").value;
    // Listen before the popup exists: it announces itself as soon as it loads.
    var challenge = fetch("/card/challenge?tx=" + encodeURIComponent(tx), { credentials: "same-origin" })
      .then(function (r) { return r.json(); });
    var popup = null;
    function onMessage(event) {
      if (event.origin !== component) { return; }
      var msg = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      if (msg.func === "getTbs") {
        challenge.then(function (c) {
          var tbs = {
            tbs: c.challenge, tbsEncoding: "NONE", hashAlgorithm: "SHA256", withCardSN: "false",
            pin: pin, nonce: "", func: "MakeSignature", signatureType: "PKCS7"
          };
          event.source.postMessage(JSON.stringify(tbs), component);
        });
        return;
      }
      if (msg.func === "sign") {
        window.removeEventListener("message", onMessage);
        challenge.then(function (c) {
          form.querySelector("[name=challenge_id]").value = c.id;
          form.querySelector("[name=signature]").value = msg.signature || "";
          form.querySelector("[name=ret_code]").value = String(msg.ret_code);
          form.querySelector("[name=last_error]").value = String(msg.last_error || "");
          try { if (popup) { popup.close(); } } catch (e) { /* already closed */ }
          form.submit();
        });
      }
    }
    window.addEventListener("message", onMessage);
    // Still within the click's activation (the check above waits at most two seconds).
    popup = window.open(component + "/popupForm", "cardcomponent", "height=200,width=200");
    if (!popup) {
      window.removeEventListener("message", onMessage);
      IdpComponents.show(status, "popup");
    }
  }

  button.addEventListener("click", function () {
    var pin = document.getElementById("pin").value;
    if (!status) { sign(pin); return; }
    IdpComponents.show(status, "pending");
    IdpComponents.probeCard(component, 2000).then(function (r) {
      if (r.state !== "ok") { IdpComponents.show(status, r.state); return; }
      var card = IdpComponents.cardOf(r.info);
      if (card.state !== "ok") { IdpComponents.show(status, card.state); return; }
      IdpComponents.show(status, "idle");
      sign(pin);
    });
  });
})();

// Health-insurance card: NHI's local component gives a card token; the IdP asks NHI's
// verification service whose card it is.
(function () {
  "use strict";
  var form = document.getElementById("health-form");
  var button = document.getElementById("health-login");
  if (!form || !button) { return; }
  var component = form.getAttribute("data-component");
  button.addEventListener("click", function () {
    IdpComponents.probeHealth(component, 5000).then(function (r) {
      form.querySelector("[name=card_token]").value = r.token || "";
      form.submit();
    });
  });
})();

// 環境檢測: every check the page has, run on load and again on 重新檢測; the pop-up check on its
// button, since a browser lets a page open windows only when the person asks.
(function () {
  "use strict";
  var list = document.getElementById("environment");
  if (!list) { return; }
  var component = list.getAttribute("data-component");
  var health = list.getAttribute("data-health");

  function run() {
    var componentCheck = document.getElementById("check-component");
    var cardCheck = document.getElementById("check-card");
    if (componentCheck) {
      IdpComponents.show(componentCheck, "pending");
      IdpComponents.show(cardCheck, "pending");
      IdpComponents.probeCard(component, 3000).then(function (r) {
        IdpComponents.show(componentCheck, r.state);
        if (r.state !== "ok") { IdpComponents.show(cardCheck, "fail"); return; }
        componentCheck.querySelector(".version").textContent = String(r.info.serverVersion || "");
        var card = IdpComponents.cardOf(r.info);
        cardCheck.querySelector(".reader").textContent = card.reader || "";
        cardCheck.querySelector(".card-number").textContent = card.card || "";
        IdpComponents.show(cardCheck, card.state);
      });
    }
    var healthCheck = document.getElementById("check-health");
    if (healthCheck && health) {
      IdpComponents.show(healthCheck, "pending");
      IdpComponents.probeHealth(health, 3000).then(function (r) { IdpComponents.show(healthCheck, r.state); });
    }
  }

  var popupCheck = document.getElementById("check-popup");
  var popupButton = document.getElementById("check-popup-button");
  if (popupButton) {
    popupButton.addEventListener("click", function () {
      IdpComponents.show(popupCheck, "pending");
      var answered = false;
      function onMessage(event) {
        if (event.origin !== window.location.origin || event.data !== "popup-check-ok") { return; }
        answered = true;
        window.removeEventListener("message", onMessage);
        IdpComponents.show(popupCheck, "ok");
      }
      window.addEventListener("message", onMessage);
      var w = window.open("/environment/popup", "popupcheck", "height=200,width=300");
      if (!w) {
        window.removeEventListener("message", onMessage);
        IdpComponents.show(popupCheck, "fail");
        return;
      }
      setTimeout(function () {
        if (answered) { return; }
        window.removeEventListener("message", onMessage);
        try { w.close(); } catch (e) { /* gone */ }
        IdpComponents.show(popupCheck, "fail");
      }, 5000);
    });
  }
  var again = document.getElementById("check-again");
  if (again) { again.addEventListener("click", run); }
  run();
})();

// The pop-up check's own window: tells the page that opened it, then closes.
(function () {
  "use strict";
  if (!document.getElementById("popup-check-page") || !window.opener) { return; }
  window.opener.postMessage("popup-check-ok", window.location.origin);
  setTimeout(function () { window.close(); }, 300);
})();
