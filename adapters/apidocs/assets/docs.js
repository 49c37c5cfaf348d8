// Starts Swagger UI on the service's own OpenAPI document. It lives in a
// file rather than inline so the page's Content-Security-Policy can forbid
// inline scripts.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The public validator badge would call out to the Internet.
    validatorUrl: null,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 1,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
