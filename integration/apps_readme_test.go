package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppsREADMESnippets checks that the README shows the application
// examples the integration tests run (everything after each file's leading
// comment block, verbatim), so the documentation cannot drift from what is
// tested.
func TestAppsREADMESnippets(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"one-app.yaml", "git.yaml", "nginx-git.conf",
		"django-cgi.yaml", "django-pool.yaml", "apache-django-ajp.conf",
	} {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		i := 0
		for i < len(lines) && (strings.HasPrefix(lines[i], "#") || lines[i] == "") {
			i++
		}
		if snippet := strings.Join(lines[i:], "\n"); !strings.Contains(string(readme), snippet) {
			t.Errorf("README.md does not show examples/%s as it is:\n%s", name, snippet)
		}
	}
	cgi, err := os.ReadFile(filepath.Join("..", "examples", "django.cgi"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```python\n"+string(cgi)+"```") {
		t.Errorf("README.md does not show examples/django.cgi as it is")
	}
}
