<?php
function part(): string { return 'v2'; }
