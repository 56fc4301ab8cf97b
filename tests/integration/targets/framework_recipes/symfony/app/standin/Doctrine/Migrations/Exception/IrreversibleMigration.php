<?php

namespace Doctrine\Migrations\Exception;

/** Stand-in (see standin/README.md). */
class IrreversibleMigration extends \RuntimeException
{
}
