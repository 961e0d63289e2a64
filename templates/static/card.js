// Card sign-in through the local card component (HiPKI-style signing server on this computer).
// The PIN goes only to the component; this page posts back the signature of a fresh, single-use
// server challenge. Protocol: the popup says {"func":"getTbs"} when ready, we answer with the
// tbsPackage, it answers {"func":"sign", ret_code, signature, ...}.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  var button = document.getElementById("card-login");
  if (!form || !button) { return; }
  var component = form.getAttribute("data-component");
  button.addEventListener("click", function () {
    var pin = document.getElementById("pin").value;
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
    // Opened within the click, so the browser does not block it.
    popup = window.open(component + "/popupForm", "cardcomponent", "height=200,width=200");
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
    fetch(component + "/token")
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        form.querySelector("[name=card_token]").value = answer.card_token || "";
        form.submit();
      })
      .catch(function () {
        form.querySelector("[name=card_token]").value = "";
        form.submit();
      });
  });
})();
