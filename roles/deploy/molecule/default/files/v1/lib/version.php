<?php
function shop_version(): string { return 'v1'; }
