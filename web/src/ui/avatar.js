// Initials in a colored circle (or a group's icon), with an online dot.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';

const COLORS = ['#00a884', '#53bdeb', '#a66cff', '#ff7a59', '#ffb020', '#e15f8a', '#2f9e8f'];

export function Avatar({ client, user, group, online }) {
  const name = group ? group.name || 'Group' : client.profiles.get(user)?.display_name || client.nameOf(user || '');
  const initials = name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => [...word][0])
    .join('')
    .toUpperCase();
  const seed = [...(group?.id || user || name)].reduce((a, c) => a + c.charCodeAt(0), 0);
  const [icon, setIcon] = useState(null);
  useEffect(() => {
    if (group?.icon) client.thumbnailUrl(group.icon).then(setIcon, () => setIcon(null));
  }, [group?.icon]);
  return html`<span class="avatar" style=${{ background: COLORS[seed % COLORS.length] }} aria-hidden="true">
    ${icon ? html`<img src=${icon} alt="" />` : initials || '?'}
    ${online && html`<span class="online-dot"></span>`}
  </span>`;
}
