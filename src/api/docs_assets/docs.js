// Renders /openapi.json as a reference: operations by tag, with parameters, request and
// response schemas ($ref links resolved to the components' JSON).
(function () {
  "use strict";
  var root = document.getElementById("api");
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function resolve(doc, schema, depth) {
    if (!schema || depth > 6) return schema;
    if (schema.$ref) {
      var name = schema.$ref.split("/").pop();
      return resolve(doc, doc.components.schemas[name], depth + 1);
    }
    var out = Array.isArray(schema) ? [] : {};
    Object.keys(schema).forEach(function (k) {
      var v = schema[k];
      out[k] = v && typeof v === "object" ? resolve(doc, v, depth + 1) : v;
    });
    return out;
  }
  function schemaBlock(doc, content) {
    if (!content) return el("p", { class: "muted" }, ["(no body)"]);
    return el("div", {}, Object.keys(content).map(function (type) {
      var schema = resolve(doc, content[type].schema, 0);
      return el("div", {}, [el("code", {}, [type]), el("pre", {}, [JSON.stringify(schema, null, 2)])]);
    }));
  }
  function operation(doc, path, method, op) {
    var params = (op.parameters || []).map(function (p) {
      return el("tr", {}, [el("td", {}, [el("code", {}, [p.name])]), el("td", {}, [p.in + (p.required ? ", required" : "")]),
        el("td", { class: "muted" }, [p.description || ""])]);
    });
    var responses = Object.keys(op.responses || {}).map(function (status) {
      var r = op.responses[status];
      return el("div", {}, [el("strong", {}, [status + " "]), r.description || "", schemaBlock(doc, r.content)]);
    });
    var security = (op.security || []).map(function (s) { return Object.keys(s).join(" + ") || "none"; }).join(" or ");
    return el("details", { id: method + path }, [
      el("summary", {}, [el("span", { class: "method " + method }, [method]), el("code", {}, [path]), " ", el("span", { class: "muted" }, [op.summary || ""])]),
      security ? el("p", {}, ["Auth: ", el("code", {}, [security])]) : el("span"),
      params.length ? el("table", {}, params) : el("span"),
      op.requestBody ? el("div", {}, [el("h4", {}, ["Request body"]), schemaBlock(doc, op.requestBody.content)]) : el("span"),
      el("h4", {}, ["Responses"])
    ].concat(responses));
  }
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    var byTag = {};
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method];
        var tag = (op.tags && op.tags[0]) || "other";
        (byTag[tag] = byTag[tag] || []).push(operation(doc, path, method, op));
      });
    });
    root.textContent = "";
    root.appendChild(el("p", {}, [doc.info.description || ""]));
    (doc.tags || []).map(function (t) { return t.name; }).concat(Object.keys(byTag)).forEach(function (tag) {
      if (!byTag[tag]) return;
      root.appendChild(el("h2", {}, [tag]));
      byTag[tag].forEach(function (op) { root.appendChild(op); });
      delete byTag[tag];
    });
  }, function (e) { root.textContent = "Could not load /openapi.json: " + e; });
})();
