<?php
// Run through an interpreter (Apache Action, lighttpd cgi.assign, junction
// interpreters): no exec bit, no "#!" line.
header("Content-Type: text/plain");
echo "php through its handler, query=", $_SERVER["QUERY_STRING"] ?? "", "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
