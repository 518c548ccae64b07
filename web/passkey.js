// Passkeys on the login and account pages: sign in with one, add one.
// The pages work without this script; it only shows what needs it, once
// the browser can make passkeys. The element with data-passkey-api names
// the plugin's API path, and data-passkey-flow the passkey routes to use
// ("login", or "step-up" for the session the browser has); elements marked
// data-passkey are shown, and those marked data-passkey-fallback hidden.
(function () {
  "use strict";
  var root = document.querySelector("[data-passkey-api]");
  if (!root || !window.PublicKeyCredential || !window.fetch || !navigator.credentials) {
    return;
  }
  var api = root.getAttribute("data-passkey-api");
  var flow = root.getAttribute("data-passkey-flow") || "login";
  root.querySelectorAll("[data-passkey]").forEach(function (el) { el.hidden = false; });
  root.querySelectorAll("[data-passkey-fallback]").forEach(function (el) { el.hidden = true; });
  var errorBox = root.querySelector("[data-passkey-error]");

  function encode(buffer) {
    var s = "";
    new Uint8Array(buffer).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decode(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function decodeIDs(list) {
    (list || []).forEach(function (c) { c.id = decode(c.id); });
  }

  // post sends body as JSON and resolves with the answer's JSON, or
  // rejects with the message of a refusal.
  function post(path, body) {
    return fetch(api + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          throw new Error(data.error || "The server refused (" + resp.status + ")");
        }
        return data;
      });
    });
  }

  // credentialJSON is a new or used passkey's answer as the server reads
  // it: binary fields in unpadded base64url.
  function credentialJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: encode(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    if (r.attestationObject) {
      out.response.attestationObject = encode(r.attestationObject);
      if (r.getTransports) {
        out.response.transports = r.getTransports();
      }
    } else {
      out.response.authenticatorData = encode(r.authenticatorData);
      out.response.signature = encode(r.signature);
      if (r.userHandle) {
        out.response.userHandle = encode(r.userHandle);
      }
    }
    return out;
  }

  function fail(err) {
    var message = err && err.message ? err.message : String(err);
    if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
      message = "The passkey request was cancelled or timed out.";
    } else if (err && err.name === "InvalidStateError") {
      message = "This device already holds a passkey for your account.";
    }
    if (errorBox) {
      errorBox.setAttribute("role", "alert");
      errorBox.textContent = message;
      errorBox.hidden = false;
    }
  }

  var signIn = root.querySelector("[data-passkey-sign-in]");
  if (signIn) {
    signIn.addEventListener("click", function () {
      signIn.disabled = true;
      post("/passkeys/" + flow + "/begin").then(function (options) {
        var pk = options.publicKey;
        pk.challenge = decode(pk.challenge);
        decodeIDs(pk.allowCredentials);
        return navigator.credentials.get({ publicKey: pk });
      }).then(function (cred) {
        var remember = document.getElementById("remember");
        var redirect = document.querySelector('input[name="redirect"]');
        var body = { credential: credentialJSON(cred), redirect: redirect ? redirect.value : "/" };
        if (flow === "login") {
          // A step-up keeps the session as it is, remembered or not.
          body.remember = !!(remember && remember.checked);
        }
        return post("/passkeys/" + flow + "/finish", body);
      }).then(function (done) {
        location.assign(done.redirect || "/");
      }).catch(function (err) {
        signIn.disabled = false;
        fail(err);
      });
    });
  }

  var add = root.querySelector("form[data-passkey-add]");
  if (add) {
    add.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = add.querySelector("button");
      var name = add.querySelector('input[name="passkey_name"]').value;
      button.disabled = true;
      post("/passkeys/register/begin").then(function (options) {
        var pk = options.publicKey;
        pk.challenge = decode(pk.challenge);
        pk.user.id = decode(pk.user.id);
        decodeIDs(pk.excludeCredentials);
        return navigator.credentials.create({ publicKey: pk });
      }).then(function (cred) {
        return post("/passkeys/register/finish", { name: name, credential: credentialJSON(cred) });
      }).then(function () {
        location.assign(add.getAttribute("data-passkey-done"));
      }).catch(function (err) {
        button.disabled = false;
        fail(err);
      });
    });
  }
})();
