//! Builds and wires the service: prompts, SIP driver, call routing, HTTP. Exposes the
//! bound ports (port 0 works in tests) and a draining shutdown.
//!
//! Construction is a straight line with no back-references: the router the SIP driver
//! needs only decides and hands accepted calls over on a channel, so it is built before
//! the driver; the call context, which holds the driver's `SipHandle`, is built after,
//! and with it the task that starts a call task for each accepted call.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::call::actions::{self, ProgramActions};
use crate::call::outbound::SipPlacer;
use crate::call::ports::RtpPorts;
use crate::call::router::{RouterConfig, SharedDialplans};
use crate::call::{CallContext, CallLog, router};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::dialer::runtime::{Dialer, DialerConfig, DialerHandle};
use crate::media::MediaWorkers;
use crate::sip::transport::{self, Census, SipHandle};
use crate::store::{Store, StoreError};
use tongdai_domain::dialer::SchedulerConfig;
use tongdai_ivr::{CompileContext, DialplanError, Dialplans};
use tongdai_media::{PromptCache, PromptError};
use tongdai_sip::{AccessConfig, EndpointConfig, Timers};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Prompts(#[from] PromptError),
    #[error("{} dialplan error(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Dialplans(Vec<DialplanError>),
    #[error("registration store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Handbook(#[from] api::handbook::HandbookError),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What `tongdai check` validated.
#[derive(Debug)]
pub struct CheckReport {
    pub prompts: usize,
    pub dialplans: usize,
    pub numbers: Vec<String>,
    /// The handbook article, rendered.
    pub handbook: Arc<api::handbook::HandbookPages>,
}

/// Compiles every dialplan against the loaded prompts and the program's actions.
pub fn load_dialplans(settings: &Settings, prompts: &PromptCache) -> Result<Dialplans, AppError> {
    let ctx = CompileContext {
        prompts: prompts.ids().map(str::to_string).collect(),
        actions: actions::catalogue(),
    };
    tongdai_ivr::load_dir(&settings.dialplans.dir, &ctx).map_err(AppError::Dialplans)
}

/// Loads and validates everything that can be wrong before a socket is opened.
pub fn check(settings: &Settings) -> Result<(PromptCache, Dialplans, CheckReport), AppError> {
    let prompts = PromptCache::load_dir(&settings.prompts.dir)?;
    let dialplans = load_dialplans(settings, &prompts)?;
    let mut numbers: Vec<String> = dialplans.numbers().map(str::to_string).collect();
    numbers.sort();
    let handbook = api::handbook::HandbookPages::load(&settings.handbook.article)?;
    let report = CheckReport {
        prompts: prompts.len(),
        dialplans: dialplans.len(),
        numbers,
        handbook: Arc::new(handbook),
    };
    Ok((prompts, dialplans, report))
}

/// The running service.
pub struct App {
    pub sip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where the handbook page listens (`[handbook] listen`).
    pub handbook_addr: SocketAddr,
    pub calls: CallLog,
    pub store: Store,
    /// The media workers (their counters: benchmarks, tests, `/debug/runtime`).
    pub media: MediaWorkers,
    dialplans: SharedDialplans,
    prompts: PromptCache,
    sip: SipHandle,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    driver: tokio::task::JoinHandle<()>,
    http_task: tokio::task::JoinHandle<()>,
    handbook_task: tokio::task::JoinHandle<()>,
    /// Stops the media workers (after the calls: they play prompts during the grace)
    /// and the idle heap trim.
    media_stop: CancellationToken,
    media_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The campaign dialer (`None` when `[dialer] enabled = false`).
    dialer: Option<DialerHandle>,
    settings: Settings,
}

impl App {
    pub async fn start(settings: Settings) -> Result<App, AppError> {
        Self::start_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Like [`App::start`], with the clock the service reads (API leases and dates, the
    /// dialer, the call tasks): tests set the time instead of sleeping.
    ///
    /// A straight line, one step each: check and load, bind, media, SIP (its router
    /// hands accepted calls over on a channel), calls (the tasks that take them), the
    /// campaign dialer, HTTP.
    pub async fn start_with_clock(settings: Settings, clock: SharedClock) -> Result<App, AppError> {
        let parts = Parts::load(settings, clock).await?;
        let sockets = Sockets::bind(&parts.settings).await?;
        let media = parts.start_media()?;
        let ports = Arc::new(RtpPorts::new(
            parts.settings.sip.listen.ip(),
            parts.settings.rtp.port_min,
            parts.settings.rtp.port_max,
        ));
        let (accepted, incoming) = mpsc::unbounded_channel();
        let router = router::router(
            RouterConfig {
                dialplans: parts.dialplans.clone(),
                ports: ports.clone(),
                media: media.workers.clone(),
                max_send_lag: parts.settings.rtp.max_send_lag,
            },
            accepted,
        );
        let (sip, driver) = parts.start_sip(sockets.sip, sockets.advertised_ip, router)?;
        let ctx = parts.call_context(sip.clone(), media.workers.clone(), sockets.advertised_ip);
        parts.tracker.spawn(router::run_inbound_calls(
            ctx.clone(),
            incoming,
            parts.tracker.clone(),
        ));
        let dialer = parts
            .start_dialer(ctx, ports, sockets.advertised_ip)
            .await?;
        let http_task = parts.start_http(sockets.http, &sip, &media.workers);
        let handbook_task = parts.start_handbook(sockets.handbook);
        tracing::info!(sip = %sockets.sip_addr, advertised = %sockets.advertised_ip,
            http = %sockets.http_addr, handbook = %sockets.handbook_addr, "tongdai is up");
        Ok(App {
            sip_addr: sockets.sip_addr,
            http_addr: sockets.http_addr,
            handbook_addr: sockets.handbook_addr,
            calls: parts.calls,
            store: parts.store,
            media: media.workers,
            dialplans: parts.dialplans,
            prompts: parts.prompts,
            sip,
            shutdown: parts.shutdown,
            tracker: parts.tracker,
            driver,
            http_task,
            handbook_task,
            media_stop: media.stop,
            media_tasks: media.tasks,
            dialer,
            settings: parts.settings,
        })
    }

    /// Recompiles the dialplans and swaps them in; on any error the old ones stay.
    pub fn reload(&self) -> Result<usize, AppError> {
        reload_dialplans(&self.settings, &self.prompts, &self.dialplans)
    }

    /// The SIP driver's handle: `dial` for outbound calls, `trunk_state` to watch the
    /// trunk, `command` for legs.
    pub fn sip(&self) -> &SipHandle {
        &self.sip
    }

    pub async fn census(&self) -> Option<Census> {
        self.sip.census().await
    }

    /// Drains and stops: new INVITEs get 503, calls in progress get `shutdown.grace` to
    /// finish, then are hung up with BYE; we wait for those BYEs to be answered (bounded
    /// by Timer F) before the sockets close.
    pub async fn shutdown(self) {
        tracing::info!(grace = ?self.settings.shutdown.grace, active = self.calls.active_count(), "draining");
        if let Some(dialer) = &self.dialer {
            dialer.drain();
        }
        self.sip.set_draining(true);
        self.shutdown.cancel();
        self.tracker.close();
        let bound = self.settings.shutdown.grace + Duration::from_secs(5);
        if tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("calls still running after the grace period");
        }
        // The dialer finishes the attempts of the calls that just ended.
        if let Some(dialer) = self.dialer {
            dialer.shutdown(Duration::from_secs(10)).await;
        }
        let bye_wait = self.settings.sip.t1 * 64;
        let _ = tokio::time::timeout(bye_wait, async {
            loop {
                match self.sip.census().await {
                    Some(c) if c.legs > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ => break,
                }
            }
        })
        .await;
        // Remove our REGISTER binding so the trunk stops routing calls here.
        self.sip.unregister(self.settings.sip.t1 * 8).await;
        self.media_stop.cancel();
        for task in self.media_tasks {
            let _ = task.await;
        }
        self.sip.stop();
        let _ = self.driver.await;
        let _ = self.http_task.await;
        let _ = self.handbook_task.await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// The listening sockets, bound before anything runs: a port in use fails the start
/// before a task exists.
struct Sockets {
    /// SIP over UDP and TCP on one port.
    sip: (tokio::net::UdpSocket, tokio::net::TcpListener),
    sip_addr: SocketAddr,
    /// The address in our Via, Contact and SDP (`sip.public_addr`, else the bound one).
    advertised_ip: IpAddr,
    http: tokio::net::TcpListener,
    http_addr: SocketAddr,
    handbook: tokio::net::TcpListener,
    handbook_addr: SocketAddr,
}

impl Sockets {
    async fn bind(settings: &Settings) -> Result<Sockets, AppError> {
        let listen = settings.sip.listen;
        let sip_err = |source| AppError::Bind {
            what: "SIP (UDP+TCP)",
            addr: listen,
            source,
        };
        let (udp, tcp) = transport::bind(listen).await.map_err(sip_err)?;
        let sip_addr = udp.local_addr().map_err(sip_err)?;
        let http_listen = settings.http.listen;
        let http_err = |source| AppError::Bind {
            what: "HTTP",
            addr: http_listen,
            source,
        };
        let http = tokio::net::TcpListener::bind(http_listen)
            .await
            .map_err(http_err)?;
        let http_addr = http.local_addr().map_err(http_err)?;
        let handbook_listen = settings.handbook.listen;
        let handbook_err = |source| AppError::Bind {
            what: "handbook page",
            addr: handbook_listen,
            source,
        };
        let handbook = tokio::net::TcpListener::bind(handbook_listen)
            .await
            .map_err(handbook_err)?;
        let handbook_addr = handbook.local_addr().map_err(handbook_err)?;
        Ok(Sockets {
            sip: (udp, tcp),
            sip_addr,
            advertised_ip: settings.advertised_ip(sip_addr),
            http,
            http_addr,
            handbook,
            handbook_addr,
        })
    }
}

/// The media workers and the tasks that stop with them.
struct Media {
    workers: MediaWorkers,
    /// Stops the workers (after the calls: they play prompts during the grace) and the
    /// idle heap trim.
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the start-up steps share; it becomes the [`App`].
struct Parts {
    settings: Settings,
    clock: SharedClock,
    store: Store,
    prompts: PromptCache,
    dialplans: SharedDialplans,
    calls: CallLog,
    metrics: Arc<crate::metrics::Metrics>,
    handbook: Arc<api::handbook::HandbookPages>,
    /// Cancelled when the service drains.
    shutdown: CancellationToken,
    /// Every call task (and the task that starts the inbound ones).
    tracker: TaskTracker,
}

impl Parts {
    /// Everything that can be wrong before a socket is opened: prompts, dialplans, the
    /// store (connected, migrated).
    async fn load(settings: Settings, clock: SharedClock) -> Result<Parts, AppError> {
        let (prompts, dialplans, report) = check(&settings)?;
        tracing::info!(prompts = report.prompts, dialplans = report.dialplans,
            numbers = ?report.numbers, "prompts and dialplans loaded");
        let store = Store::connect(&settings.database.url).await?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        Ok(Parts {
            handbook: report.handbook,
            calls: CallLog::with_observer(metrics.clone()),
            metrics,
            dialplans: Arc::new(RwLock::new(Arc::new(dialplans))),
            prompts,
            store,
            clock,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            settings,
        })
    }

    /// The shared media clock: one worker per runtime worker thread (see
    /// `media::worker`), and the idle heap trim beside them.
    fn start_media(&self) -> Result<Media, AppError> {
        let stop = CancellationToken::new();
        let n = tokio::runtime::Handle::current().metrics().num_workers();
        let (workers, mut tasks) =
            MediaWorkers::spawn(n, stop.clone()).map_err(|source| AppError::Bind {
                what: "media workers (epoll)",
                addr: self.settings.sip.listen,
                source,
            })?;
        tasks.push(tokio::spawn(trim_heap_when_idle(
            self.calls.clone(),
            stop.clone(),
        )));
        Ok(Media {
            workers,
            stop,
            tasks,
        })
    }

    /// The SIP driver on the bound sockets, with the trunk and the source ACL.
    fn start_sip(
        &self,
        (udp, tcp): (tokio::net::UdpSocket, tokio::net::TcpListener),
        advertised_ip: IpAddr,
        router: transport::Router,
    ) -> Result<(SipHandle, tokio::task::JoinHandle<()>), AppError> {
        let s = &self.settings;
        let listen = s.sip.listen;
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(listen.port());
        let endpoint = EndpointConfig {
            advertised: SocketAddr::new(advertised_ip, port),
            timers: Timers {
                t1: s.sip.t1,
                t2: s.sip.t2,
                t4: s.sip.t4,
            },
            user_agent: s.sip.user_agent.clone(),
            max_legs: s.sip.max_calls,
        };
        let access = AccessConfig {
            acl: s.sip.acl(),
            trunk: s.trunk.trunk_config(),
        };
        transport::spawn_with(endpoint, access, udp, tcp, router, self.clock.clone()).map_err(
            |source| AppError::Bind {
                what: "SIP",
                addr: listen,
                source,
            },
        )
    }

    /// What every call task shares.
    fn call_context(
        &self,
        sip: SipHandle,
        media: MediaWorkers,
        advertised_ip: IpAddr,
    ) -> Arc<CallContext> {
        let s = &self.settings;
        Arc::new(CallContext {
            sip,
            prompts: self.prompts.clone(),
            log: self.calls.clone(),
            advertised_ip,
            answer_delay: s.sip.answer_delay,
            inactivity_timeout: s.rtp.inactivity_timeout,
            max_send_lag: s.rtp.max_send_lag,
            actions: ProgramActions {
                store: self.store.clone(),
                program: Arc::new(s.program.clone()),
                clock: self.clock.clone(),
            },
            store: self.store.clone(),
            media,
            shutdown: self.shutdown.clone(),
            shutdown_grace: s.shutdown.grace,
            clock: self.clock.clone(),
        })
    }

    /// The campaign dialer (`[dialer] enabled`): recovers what a previous run left
    /// dialling, then dials.
    async fn start_dialer(
        &self,
        ctx: Arc<CallContext>,
        ports: Arc<RtpPorts>,
        advertised_ip: IpAddr,
    ) -> Result<Option<DialerHandle>, AppError> {
        let s = &self.settings;
        if !s.dialer.enabled {
            return Ok(None);
        }
        let placer = SipPlacer::new(
            ctx,
            self.dialplans.clone(),
            ports,
            self.tracker.clone(),
            s.trunk.caller_id.trim().to_string(),
        );
        let cfg = DialerConfig {
            instance: s.dialer.instance_name(),
            poll_interval: s.dialer.poll_interval,
            scheduler: SchedulerConfig {
                outbound_ceiling: u32::try_from(s.sip.max_calls - s.dialer.inbound_reserve)
                    .unwrap_or(u32::MAX),
                ..SchedulerConfig::default()
            },
            program: Arc::new(s.program.clone()),
            call_id_host: advertised_ip.to_string(),
        };
        tracing::info!(instance = %cfg.instance, "campaign dialer starting");
        let (dialer, ends) = Dialer::new(self.store.clone(), placer, cfg, self.clock.clone());
        dialer.recover().await?;
        Ok(Some(dialer.spawn(ends)))
    }

    /// The HTTP API on its bound listener.
    /// The handbook page, on its own listener; it stops with HTTP when the service drains.
    fn start_handbook(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(api::handbook::serve(
            listener,
            api::handbook::HandbookState {
                pages: self.handbook.clone(),
                store: self.store.clone(),
                program: Arc::new(self.settings.program.clone()),
                clock: self.clock.clone(),
            },
            self.shutdown.clone(),
        ))
    }

    fn start_http(
        &self,
        listener: tokio::net::TcpListener,
        sip: &SipHandle,
        media: &MediaWorkers,
    ) -> tokio::task::JoinHandle<()> {
        let dialplans = self.dialplans.clone();
        let names = self.dialplans.clone();
        let reload = {
            let (settings, prompts, plans) = (
                self.settings.clone(),
                self.prompts.clone(),
                self.dialplans.clone(),
            );
            move || Ok(reload_dialplans(&settings, &prompts, &plans)?)
        };
        let media = media.clone();
        tokio::spawn(api::serve(
            listener,
            api::ApiState::new(api::ApiContext {
                store: self.store.clone(),
                program: Arc::new(self.settings.program.clone()),
                calls: self.calls.clone(),
                sip: sip.clone(),
                reload: Arc::new(reload),
                dialplans: Arc::new(move || dialplans.read().map(|d| d.len()).unwrap_or(0)),
                dialplan_names: Arc::new(move || {
                    names
                        .read()
                        .map(|d| d.names().map(str::to_owned).collect())
                        .unwrap_or_default()
                }),
                outbound_line: self.settings.trunk.trunk_config().map(|t| t.caller_id),
                media_lag: Arc::new(move || media.send_lag()),
                metrics: self.metrics.clone(),
                clock: self.clock.clone(),
                settings: self.settings.api.clone(),
                shutdown: self.shutdown.clone(),
            }),
        ))
    }
}

/// Gives the heap freed by finished calls back to the OS once the service is idle: glibc
/// keeps freed memory in its arenas, so after a load peak the RSS would stay at the peak
/// for the life of the process. Checked once a second; while no call is active after
/// calls have ended, trims at once and then every 10 s for a minute, because what calls
/// leave behind is freed in steps (the SIP layer keeps completed transactions for 64·T1
/// = 32 s to absorb retransmissions). Never in the middle of a load.
async fn trim_heap_when_idle(calls: CallLog, stop: CancellationToken) {
    const TRIMS_AFTER_ACTIVITY: u32 = 7;
    const EVERY: Duration = Duration::from_secs(10);
    let mut seen_finished = 0;
    let mut trims_left = 0;
    let mut next_trim = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let finished = calls.finished_total();
        if finished != seen_finished {
            seen_finished = finished;
            trims_left = TRIMS_AFTER_ACTIVITY;
            next_trim = now;
        }
        if trims_left > 0 && now >= next_trim && calls.active_count() == 0 {
            trims_left -= 1;
            next_trim = now + EVERY;
            trim_heap();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn reload_dialplans(
    settings: &Settings,
    prompts: &PromptCache,
    shared: &SharedDialplans,
) -> Result<usize, AppError> {
    match load_dialplans(settings, prompts) {
        Ok(plans) => {
            let n = plans.len();
            let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
            *guard = Arc::new(plans);
            tracing::info!(dialplans = n, "dialplans reloaded");
            Ok(n)
        }
        Err(e) => {
            tracing::error!(error = %e, "dialplan reload refused; the running plans stay");
            Err(e)
        }
    }
}
