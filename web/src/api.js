// HTTP calls to the gateway. The page may come from any gateway; calls go to
// the one that serves this user (its `base`), learned from the answer to
// registration. A `421` (asked for with `Missive-Redirect: manual`, since a
// browser drops `Authorization` on a cross-origin redirect) names another
// gateway: the call is repeated there and that gateway is kept.

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || 'http_' + status;
    this.body = body;
  }
}

export class Api {
  constructor(base, tokens, onTokens) {
    this.base = base || location.origin;
    this.tokens = tokens; // {access_token, refresh_token, expires_at}
    this.onTokens = onTokens || (() => {});
    this.refreshing = null;
  }

  url(path) {
    return path.startsWith('http') ? path : this.base + path;
  }

  /**
   * Fetches `path`, repeating it at the gateway a `421` names; that gateway
   * is kept for later calls unless `stay` (media: the gateway holding an
   * upload is not the user's).
   */
  async follow(path, { method = 'GET', body, token, stay = false } = {}) {
    let url = this.url(path);
    for (let hop = 0; hop < 3; hop++) {
      const headers = { 'Missive-Redirect': 'manual' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      if (response.status !== 421) return response;
      url = (await response.json()).error.location;
      if (!stay) this.base = new URL(url).origin;
    }
    throw new Error('too many redirects between gateways');
  }

  async raw(method, path, body, token) {
    const response = await this.follow(path, { method, body, token });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }

  /** A call as this device, refreshing the access token when it expired. */
  async call(method, path, body) {
    await this.fresh();
    try {
      return await this.raw(method, path, body, this.tokens.access_token);
    } catch (error) {
      if (error.status !== 401 || error.code !== 'unauthorized') throw error;
      await this.refresh();
      return this.raw(method, path, body, this.tokens.access_token);
    }
  }

  get(path) {
    return this.call('GET', path);
  }
  post(path, body = {}) {
    return this.call('POST', path, body);
  }
  put(path, body = {}) {
    return this.call('PUT', path, body);
  }
  patch(path, body = {}) {
    return this.call('PATCH', path, body);
  }
  del(path) {
    return this.call('DELETE', path);
  }

  /** Refreshes the token pair a minute before it expires. */
  async fresh() {
    if (this.tokens && Date.now() > this.tokens.expires_at - 60_000) await this.refresh();
  }

  refresh() {
    this.refreshing ||= (async () => {
      try {
        const pair = await this.raw('POST', '/v1/auth/refresh', { refresh_token: this.tokens.refresh_token });
        this.setTokens(pair);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  setTokens(pair) {
    this.tokens = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      expires_at: Date.now() + pair.expires_in * 1000,
    };
    this.onTokens(this.tokens);
  }

  wsUrl() {
    const url = new URL('/v1/ws', this.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('access_token', this.tokens.access_token);
    return url.toString();
  }

  /** Uploads bytes to a slot's URL (the gateway's own or a presigned one), reporting progress. */
  upload(slot, bytes, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open(slot.method || 'PUT', this.url(slot.upload_url));
      for (const [name, value] of Object.entries(slot.headers || {})) request.setRequestHeader(name, value);
      request.upload.onprogress = (event) => event.lengthComputable && onProgress?.(event.loaded / event.total);
      request.onload = () =>
        request.status < 300 ? resolve() : reject(new Error(`the upload answered ${request.status}`));
      request.onerror = () => reject(new Error('the upload failed: offline?'));
      request.send(bytes);
    });
  }

  /** Downloads media bytes: `/v1/media/{id}` answers with a short-lived URL to fetch. */
  async download(mediaId) {
    await this.fresh();
    const response = await this.follow(`/v1/media/${mediaId}`, { token: this.tokens.access_token, stay: true });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return new Uint8Array(await response.arrayBuffer());
  }
}
