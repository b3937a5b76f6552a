// The docs pages: server-rendered HTML (escaped Markdown); the script only marks the page ready
// and keeps the contents list's current section highlighted while reading.

const main = document.getElementById('main');
const links = new Map([...document.querySelectorAll('.toc a')].map((a) => [a.getAttribute('href').slice(1), a]));
if (links.size && 'IntersectionObserver' in window) {
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      for (const a of links.values()) a.removeAttribute('aria-current');
      links.get(e.target.id)?.setAttribute('aria-current', 'true');
    }
  }, {rootMargin: '0px 0px -70% 0px'});
  for (const id of links.keys()) {
    const el = document.getElementById(decodeURIComponent(id));
    if (el) seen.observe(el);
  }
}
main.dataset.ready = 'true';
