// Calls the Caseport API. Every answer becomes { ok, status, data } or an error with a
// sentence a person can act on, also when the network or the server fails.

const FALLBACK = {
  0: "Caseport cannot be reached. Check your connection and try again.",
  413: "That is too much to send at once.",
  500: "Caseport had a problem on its side. Try again in a moment.",
  502: "A service Caseport depends on did not answer. Try again in a moment.",
  503: "Caseport is busy. Try again in a moment.",
};

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
    // Every field at fault, when a form had several problems: [{ field, message }].
    this.fields = fields || [];
  }
}

/** Sends a request; answers the JSON body, or throws ApiError. */
export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", FALLBACK[0]);
  }
  if (response.status === 204) return {};
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return data || {};
  const error = data && data.error;
  if (response.status === 401 && error && error.code === "not_signed_in" && path !== "/api/auth/me") {
    // The session ended (idle, absolute limit, or revoked by a password change): the page
    // goes back to its sign-in form.
    window.dispatchEvent(new CustomEvent("caseport:signed-out"));
  }
  const message = (error && error.message)
    || FALLBACK[response.status]
    || `Caseport answered ${response.status}. Try again.`;
  throw new ApiError(response.status, error ? error.code : "http_error", message,
    error ? error.field : undefined, response.headers.get("retry-after"),
    error && Array.isArray(error.fields) ? error.fields : []);
}
