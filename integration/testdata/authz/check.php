<?php
// A FastCGI authorizer (FCGI_ROLE=AUTHORIZER) for junction's integration
// tests: "Authorization: Bearer good" is allowed, with variables for the
// guarded backend; a path containing /redirect/ is sent to a login page;
// anything else is denied with a page and a header of its own; a path
// containing /slow/ takes three seconds to decide.
$uri = $_SERVER['REQUEST_URI'] ?? '';
if (strpos($uri, '/slow/') !== false) {
    sleep(3);
}
if (strpos($uri, '/redirect/') !== false) {
    header('Location: /login?next=' . rawurlencode($uri), true, 302);
    exit;
}
if (($_SERVER['HTTP_AUTHORIZATION'] ?? '') === 'Bearer good') {
    header('Variable-REMOTE_USER: alice');
    header('Variable-AUTHZ_ROLE: ' . ($_SERVER['FCGI_ROLE'] ?? '(unset)'));
    header('Variable-AUTHZ_STDIN: ' . strlen(file_get_contents('php://input')));
    header('Variable-AUTHZ_CONTENT_LENGTH: ' . ($_SERVER['CONTENT_LENGTH'] ?? '(unset)'));
    header('Variable-AUTHZ_METHOD: ' . ($_SERVER['REQUEST_METHOD'] ?? '(unset)'));
    header('Content-Type: text/plain');
    echo "allowed\n";
    exit;
}
http_response_code(403);
header('Content-Type: text/html; charset=utf-8');
header('X-Authz-Reason: missing or bad token');
echo "<h1>denied by check.php</h1>\n";
