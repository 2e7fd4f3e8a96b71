// Passkey ceremonies of Enclave's console. A button with data-webauthn="create" or "get"
// carries the WebAuthn options in data-options (JSON whose binary fields are base64url, as
// the server wrote them). Clicking it asks the browser's authenticator, writes the answer
// (JSON, binary fields base64url) into the form's hidden input named by data-target, and
// submits the form; the server verifies everything.
"use strict";
(function () {
  function fromB64u(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
    return out;
  }
  function toB64u(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decodeIds(list) {
    return (list || []).map(function (c) {
      return { type: c.type, id: fromB64u(c.id), transports: c.transports };
    });
  }
  function created(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64u(r.clientDataJSON),
        attestationObject: toB64u(r.attestationObject),
        transports: typeof r.getTransports === "function" ? r.getTransports() : []
      }
    };
  }
  function asserted(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64u(r.clientDataJSON),
        authenticatorData: toB64u(r.authenticatorData),
        signature: toB64u(r.signature),
        userHandle: r.userHandle ? toB64u(r.userHandle) : null
      }
    };
  }
  async function run(button) {
    var options = JSON.parse(button.dataset.options);
    options.challenge = fromB64u(options.challenge);
    var answer;
    if (button.dataset.webauthn === "create") {
      options.user.id = fromB64u(options.user.id);
      options.excludeCredentials = decodeIds(options.excludeCredentials);
      answer = created(await navigator.credentials.create({ publicKey: options }));
    } else {
      options.allowCredentials = decodeIds(options.allowCredentials);
      answer = asserted(await navigator.credentials.get({ publicKey: options }));
    }
    var form = button.form;
    form.elements[button.dataset.target].value = JSON.stringify(answer);
    form.submit();
  }
  document.querySelectorAll("button[data-webauthn]").forEach(function (button) {
    button.addEventListener("click", function () {
      var status = document.getElementById(button.dataset.status);
      if (!window.PublicKeyCredential) {
        status.textContent = "This browser does not support passkeys.";
        return;
      }
      button.disabled = true;
      status.textContent = "Waiting for your passkey…";
      run(button).catch(function (err) {
        button.disabled = false;
        status.textContent = "The passkey was not used (" + (err && err.name ? err.name : "error") +
          "). Try again, or use another way.";
      });
    });
  });
})();
