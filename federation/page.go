package federation

import (
	"html/template"
	"net/http"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in not completed · phivault</title></head>
<body><main>
<h1>Sign-in not completed</h1>
<p role="alert">{{.}}</p>
<p>Return to the application to start again.</p>
</main></body>
</html>
`))

// page answers with a small HTML page showing message, which must be one
// of the fixed messages of this package.
func (h *Handler) page(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	pageTemplate.Execute(w, message)
}
