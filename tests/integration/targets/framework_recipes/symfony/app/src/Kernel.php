<?php

namespace App;

use App\Controller\HomeController;
use StandIn\Command\MigrationsExecuteCommand;
use StandIn\Command\MigrationsListCommand;
use Symfony\Bundle\FrameworkBundle\FrameworkBundle;
use Symfony\Bundle\FrameworkBundle\Kernel\MicroKernelTrait;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;
use Symfony\Component\HttpKernel\Kernel as BaseKernel;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

class Kernel extends BaseKernel
{
    use MicroKernelTrait;

    public function registerBundles(): iterable
    {
        return [new FrameworkBundle()];
    }

    protected function configureContainer(ContainerConfigurator $container): void
    {
        $container->extension('framework', [
            'secret' => '%env(APP_SECRET)%',
            'router' => ['utf8' => true],
            'http_method_override' => false,
        ]);
        // Read once, when the container is compiled (cache:warmup at the build): the page shows
        // it from the compiled container in var/cache/, not from the file.
        $container->parameters()->set('app.release', trim(file_get_contents($this->getProjectDir().'/RELEASE')));
        $services = $container->services()->defaults()->autowire()->autoconfigure();
        $services->set(HomeController::class)->public()->tag('controller.service_arguments')
            ->arg('$release', '%app.release%')
            ->arg('$databaseUrl', '%env(resolve:DATABASE_URL)%');
        // The stand-in for doctrine/migrations (not packaged by Debian): see standin/README.
        $services->set(MigrationsListCommand::class)->arg('$databaseUrl', '%env(resolve:DATABASE_URL)%')
            ->arg('$paths', '%migrations_paths%');
        $services->set(MigrationsExecuteCommand::class)->arg('$databaseUrl', '%env(resolve:DATABASE_URL)%')
            ->arg('$paths', '%migrations_paths%');
        // As doctrine_migrations.migrations_paths would say: one namespace per phase.
        $container->parameters()->set('migrations_paths', [
            'DoctrineMigrations\Expand' => '%kernel.project_dir%/migrations/expand',
            'DoctrineMigrations\Contract' => '%kernel.project_dir%/migrations/contract',
        ]);
    }

    protected function configureRoutes(RoutingConfigurator $routes): void
    {
        $routes->add('home', '/')->controller(HomeController::class);
    }
}
