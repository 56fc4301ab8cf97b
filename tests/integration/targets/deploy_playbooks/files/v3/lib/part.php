<?php
function part(): string { return 'v3'; }
