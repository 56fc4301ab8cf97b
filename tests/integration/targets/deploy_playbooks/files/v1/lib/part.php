<?php
function part(): string { return 'v1'; }
