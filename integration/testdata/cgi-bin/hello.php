#!/usr/bin/php-cgi -dcgi.force_redirect=0
<?php
header("Content-Type: text/plain");
echo "Hello from php\n";
echo "query=", $_SERVER["QUERY_STRING"] ?? "", "\n";
