// Runs the WebAuthn login ceremony of /oauth/passkey/login: asks the server
// for a challenge, lets the authenticator sign it, and posts the result.
"use strict";

function b64urlToBytes(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bytesToB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function requestOptions(o) {
  if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(o);
  }
  o.challenge = b64urlToBytes(o.challenge);
  (o.allowCredentials || []).forEach(function (c) { c.id = b64urlToBytes(c.id); });
  return o;
}

function assertionJSON(c) {
  if (typeof c.toJSON === "function") return c.toJSON();
  const r = c.response;
  return {
    id: c.id,
    rawId: bytesToB64url(c.rawId),
    type: c.type,
    authenticatorAttachment: c.authenticatorAttachment || undefined,
    clientExtensionResults: c.getClientExtensionResults(),
    response: {
      clientDataJSON: bytesToB64url(r.clientDataJSON),
      authenticatorData: bytesToB64url(r.authenticatorData),
      signature: bytesToB64url(r.signature),
      userHandle: r.userHandle ? bytesToB64url(r.userHandle) : undefined,
    },
  };
}

function show(msg) {
  const p = document.getElementById("message");
  p.textContent = msg;
  p.hidden = false;
}

document.addEventListener("DOMContentLoaded", function () {
  const form = document.getElementById("passkey-form");
  if (!form) return;
  if (!window.PublicKeyCredential) {
    show("This browser does not support passkeys.");
    return;
  }
  form.addEventListener("submit", async function (ev) {
    if (document.getElementById("credential").value) return; // second pass: really submit
    ev.preventDefault();
    try {
      const begin = await fetch("/oauth/passkey/login/begin", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ pending: form.dataset.pending, username: document.getElementById("username").value }),
      });
      const data = await begin.json();
      if (!begin.ok) {
        show(data.error_description || "The sign-in could not start.");
        return;
      }
      const cred = await navigator.credentials.get({ publicKey: requestOptions(data.publicKey) });
      document.getElementById("ceremony").value = data.ceremony;
      document.getElementById("credential").value = JSON.stringify(assertionJSON(cred));
      form.submit();
    } catch (e) {
      show("The passkey was not used. Try again.");
    }
  });
});
