// The API docs page (/docs): Swagger UI over /openapi.json, sending the API key the studio
// keeps in this origin's localStorage, so a keyed server's document loads and "Try it out"
// works without typing the key again (the Authorize button still overrides it).
const KEY_STORAGE = "reelforge.apiKey";

window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  layout: "BaseLayout",
  presets: [window.SwaggerUIBundle.presets.apis],
  requestInterceptor: (request) => {
    const key = localStorage.getItem(KEY_STORAGE);
    if (key && !request.headers.Authorization) {
      request.headers.Authorization = `Bearer ${key}`;
    }
    return request;
  },
});
